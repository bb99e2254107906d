"""What the study found, in sentences written from fits.json, boundary.json and adaptive.json
(read through raysweep.report.reading): per downstream set, the law form and its exponents with
their intervals, per slice (student, teachers, Df) where distilling from the smaller teachers
helps and where plain training wins, Theorem 1's sign change, and what more compute would buy.

Every sentence states what a number in those files shows and no more: a boundary is "the laws'"
or "the measurements'", with its 95 % interval, open where too many draws do not cross; a slice
with neither says what its measured ends show, and a slice whose ends have no standard error says
so instead of a sign. The report and the terminal print the same sentences.

Left out: D*p (where the advantage peaks) -- the tables carry it; a boundary's use is D**p.
"""

from __future__ import annotations

import dataclasses
import math

from raysweep.laws.catalogue import SYMBOLS
from raysweep.laws.entries import LawEntry
from raysweep.laws.slices import Slice
from raysweep.report import reading
from raysweep.report.figures import short


@dataclasses.dataclass
class Findings:
    downstream: str
    boundary: list[str]            # where plain training overtakes distilling, Theorem 1
    laws: list[str]                # the form and exponents of each error law
    compute: list[str]             # what the adaptive rounds did, or would do
    slices: list[tuple[str, str]]  # (slice label, what it shows), one per slice
    rows: list[Slice]              # the slices themselves (boundary.json)

    @property
    def sentences(self) -> list[str]:
        return self.boundary + self.laws + self.compute


def share(images, total) -> str:
    """'31 %' of TOTAL images, or '' where the total is unknown."""
    if not total or images is None:
        return ""
    pct = 100.0 * images / total
    return f"{pct:.2g} %" if pct < 10 else f"{pct:.0f} %"


def interval(c: reading.Crossing, total=None) -> str:
    """'403k [232k, 635k] (31 % [18 %, 49 %] of the upstream set)'; an open upper end, or no
    interval at all, said in words."""
    if c.lo is None:
        why = "one seed a Dp" if c.by == "measurements" else "no bootstrap"
        text, ends = f"{short(c.value)} (no interval: {why})", ""
    elif c.lo == 0:
        upper = short(c.hi) if c.hi is not None else "no upper end"
        text = (f"{short(c.value)} [no lower end: {c.below_share:.0%} of the draws never favour "
                f"distilling, {upper}]")
        ends = f" [open, {share(c.hi, total) if c.hi is not None else 'open'}]"
    elif c.hi is None:
        text = (f"{short(c.value)} [{short(c.lo)}, no upper end: {c.open_share:.0%} of the "
                f"draws do not cross]")
        ends = f" [{share(c.lo, total)}, open]"
    else:
        text = f"{short(c.value)} [{short(c.lo)}, {short(c.hi)}]"
        ends = f" [{share(c.lo, total)}, {share(c.hi, total)}]"
    if total:
        text += f" ({share(c.value, total)}{ends} of the upstream set)"
    return text


def slice_label(s: Slice, sizes: dict) -> str:
    teachers = "+".join(map(str, s.teacher_heads)) or "no "
    of_set = share(s.df, sizes.get(s.downstream))
    df = f"Df {short(s.df)}" + (f" ({of_set})" if of_set else "")
    return f"{'?' if s.student_heads is None else s.student_heads}h <- {teachers}h, {df}"


def _dp(x) -> str:
    return short(x) if x is not None else "?"


def _end_words(small: dict, large: dict) -> str:
    seeds = min(small.get("seeds") or 0, large.get("seeds") or 0)
    return (f"plain - distilled {small['mean']:+.3f} at Dp {_dp(small.get('dp'))}, "
            f"{large['mean']:+.3f} at {_dp(large.get('dp'))} ({seeds} seed{'s' * (seeds != 1)})")


def without_crossing(s: Slice) -> str:
    """A slice where neither the laws nor the measurements cross: what its ends show."""
    found = reading.ends(s)
    if found is None:
        return f"cannot tell: {s.status}"
    small, large = found
    span = f"Dp {_dp(small.get('dp'))}-{_dp(large.get('dp'))}"
    signs = reading.sign(small), reading.sign(large)
    if None in signs:
        return f"no crossing in {span}; {_end_words(small, large)}: no standard error"
    both = f"at both ends of the measured {span} (beyond 2 se), no crossing"
    if signs == (-1, -1):
        return f"plain training wins {both}"
    if signs == (1, 1):
        return f"distillation helps {both}"
    return f"no crossing in {span}; {_end_words(small, large)}"


def slice_finding(s: Slice, sizes: dict) -> str:
    """Where distilling helps and where plain training wins in one slice, in one line."""
    total = sizes.get("upstream")
    by_laws, by_data = reading.law_crossing(s), reading.measured_crossing(s)
    if by_laws:
        text = f"helps below, plain wins above Dp {interval(by_laws, total)} (laws)"
        if by_data:
            text += f"; measured turn {short(by_data.value)}"
        return text + disagreement(s)
    if by_data:
        return (f"helps below, plain wins above Dp {interval(by_data, total)} (measured; "
                f"the laws: {s.status})")
    return without_crossing(s)


def disagreement(s: Slice) -> str:
    """Where the measured ends contradict a crossing of the laws (beyond 2 se), said so."""
    found = reading.ends(s)
    if not found:
        return ""
    small, large = found
    said = []
    if reading.sign(small) == -1:
        said.append(f"plain wins at the smallest Dp ({small['mean']:+.3f})")
    if reading.sign(large) == 1:
        said.append(f"distilling still helps at the largest ({large['mean']:+.3f})")
    return f"; but measured, {' and '.join(said)}" if said else ""


def slice_cell(s: Slice) -> str:
    """The same finding in a table cell of the terminal: the crossing and its interval, or a word."""
    by_laws, by_data = reading.law_crossing(s), reading.measured_crossing(s)
    c = by_laws or by_data
    if c:
        hi = short(c.hi) if c.hi else "open"
        lo = short(c.lo) if c.lo else "open"
        inner = f" [{lo}, {hi}]" if c.lo is not None else " (no interval)"
        return short(c.value) + inner + ("" if by_laws else " meas.")
    found = reading.ends(s)
    signs = (reading.sign(found[0]), reading.sign(found[1])) if found else (None, None)
    return {(-1, -1): "plain wins", (1, 1): "distil helps"}.get(
        signs, "no crossing" if found else "cannot tell")


def exponents(entry: LawEntry) -> str:
    """'Dp 0.415 [0.282, 0.484], M 0.282 [0.26, 0.314], Df 0.21 [0.151, 0.475]': each term's
    exponent (the law has x^-exponent) with its interval, and the terms to distrust named."""
    parts = [f"{label} {value:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")
             for label, value, ci in reading.exponents(entry)]
    text = "exponents " + ", ".join(parts) if parts else "no power-law terms"
    shaky = [SYMBOLS[k].measures if k in SYMBOLS else k for k in reading.flagged(entry)]
    return text + (f" ({', '.join(shaky)}: barely constrained by the data)" if shaky else "")


def law_sentences(fits: dict | None, ds: str) -> list[str]:
    if fits is None:
        return ["No fits.json: no law is fitted yet (python -m raysweep.fit OUT)."]
    out = []
    for name, what in ((reading.PLAIN, "Plain error"), (reading.DISTILLED, "Distilled error")):
        entry = reading.law(fits, ds, name)
        if not reading.fitted(entry):
            why = entry.status if entry is not None and entry.status is not None else "no entry"
            out.append(f"{what}: not fitted ({why}).")
            continue
        fit = reading.misfit(entry)
        verdict = ("lack of fit untested (no grid point measured twice)" if fit is None else
                   f"it misses its grid means beyond the seeds' noise (p {fit[1]:.2g})"
                   if fit[0] else "within the seeds' noise of its grid means")
        floor = "; no floor in the rows (E left out)" if entry.E_left_out is not None else ""
        out.append(f"{what}: {reading.form(entry)}, {verdict}{asks(entry)}; "
                   f"{exponents(entry)}{floor}.")
    return out


def asks(entry: LawEntry) -> str:
    """Where a rejected law misses most and so what the data still ask for: a term joining two
    inputs (the cell of two inputs' values) or another shape of one input's term."""
    found = reading.largest_miss(entry)
    if found is None:
        return ""
    at, miss, se = found
    names = [SYMBOLS[k].measures if k in SYMBOLS else k for k in at]
    where = " x ".join(f"{n} {short(v)}" for n, v in zip(names, at.values()))
    side = "above" if miss > 0 else "below"
    size = f"{100 * abs(math.expm1(miss)):.2g} % {side} it" + (f", {abs(miss) / se:.1f} se"
                                                                if se > 0 else "")
    term = (f"a term joining {names[0]} and {names[1]}" if len(names) == 2
            else f"another shape of the {names[0]} term")
    return f", most at {where} (the rows {size}): the data ask for {term}"


def boundary_sentence(mine: list[Slice], sizes: dict) -> str:
    """How many slices cross, where, per student: the overall answer in one sentence."""
    if not mine:
        return "No boundary: no slice has plain and distilled trials to compare."
    crossing = {id(s): reading.law_crossing(s) or reading.measured_crossing(s) for s in mine}
    found = [s for s in mine if crossing[id(s)]]
    if not found:
        return (f"No slice's laws or measurements cross inside the measured Dp ({len(mine)} "
                f"slices): the data place no boundary.")
    by_student: dict = {}
    for s in found:
        by_student.setdefault(s.student_heads, []).append(crossing[id(s)].value)
    total = sizes.get("upstream")
    where = []
    for h, values in sorted(by_student.items()):
        images, pct = _span(values, total)
        unit = " pretraining images" if not where else ""
        of = (" of the upstream set" if not where else "") if pct else ""
        where.append(f"{h}-head students at {images}{unit}" + (f" ({pct}{of})" if pct else ""))
    loose = sum(not reading.pinned(crossing[id(s)], s) for s in found)
    caveat = (f" In {loose} of these {len(found)} the 95 % interval is open or runs outside the "
              f"measured Dp: the data do not yet pin where." if loose else "")
    return (f"Plain training overtakes distillation from the smaller teachers inside the measured "
            f"Dp in {len(found)} of {len(mine)} slices: {', '.join(where)}; below that, "
            f"distilling helps.{caveat}")


def _span(values: list[float], total) -> tuple[str, str]:
    """('347k-403k', '27-31 %'): the range of a student's crossings, and of their shares."""
    lo, hi = min(values), max(values)
    images = short(lo) if short(lo) == short(hi) else f"{short(lo)}-{short(hi)}"
    if not total:
        return images, ""
    a, b = share(lo, total).removesuffix(" %"), share(hi, total).removesuffix(" %")
    return images, (f"{a} %" if a == b else f"{a}-{b} %")


def theorem1_sentence(mine: list[Slice]) -> str:
    told = [s for s in mine if reading.theorem1(s) is not None]
    shown = [s for s in told if reading.theorem1(s)]
    if not told:
        return ("Theorem 1's sign change (help at the smallest Dp, harm at the largest) cannot be "
                "judged: no slice has a standard error at both ends (one seed a point, or fewer "
                "than 2 Dp run both ways).")
    where = sorted({short(s.df) for s in shown}, key=lambda t: t)
    at = f", at Df {', '.join(where)}" if shown else ""
    return (f"Theorem 1's sign change (help at the smallest Dp, harm at the largest, each beyond "
            f"2 se) is seen in {len(shown)} of the {len(told)} slices that can tell{at}.")


def compute_sentence(mine: list[Slice], adaptive: dict | None) -> str:
    state = reading.adaptive_state(adaptive)
    if state is None:
        found = [c for s in mine if (c := reading.law_crossing(s) or reading.measured_crossing(s))]
        if not found:
            return ("More compute: no slice has a boundary for python -m raysweep.adaptive "
                    "--target boundary to pin; more Dp values or seeds in the sweep would show "
                    "whether one exists.")
        wide = sum(c.hi is None or not c.lo or (c.hi - c.lo) > 0.2 * c.value for c in found)
        return (f"More compute: python -m raysweep.adaptive --target boundary places runs where "
                f"a boundary is still uncertain: {wide} of the {len(found)} boundaries here have "
                f"an interval wider than +-10 %.")
    spent = ""
    if state["spent"] is not None and state["amount"]:
        spent = (f", spending {state['spent']:.3g} of {state['amount']:.3g} {state['unit']} "
                 f"({state['spent'] / state['amount']:.0%})")
    return (f"The adaptive rounds ran {state['rounds']} round(s), {state['trials']} trials"
            f"{spent}; they stopped: {state['stopped'] or 'not yet'}.")


def findings(fits: dict | None, boundary: list | None, adaptive: dict | None,
             sizes: dict | None = None) -> list[Findings]:
    """The findings of every downstream set in FITS or BOUNDARY."""
    sizes = sizes or {}
    sets = set((fits or {}).get("downstream") or {}) | {
        s.downstream if isinstance(s, Slice) else s.get("downstream") for s in boundary or []
        if isinstance(s, (Slice, dict))}
    out = []
    for ds in sorted(s for s in sets if s):
        mine = reading.slices(boundary, ds)
        if boundary is None:
            said = ["No boundary.json: the boundary step has not run."], []
        else:
            said = ([boundary_sentence(mine, sizes), theorem1_sentence(mine)],
                    [compute_sentence(mine, adaptive)])
        out.append(Findings(ds, said[0], law_sentences(fits, ds), said[1],
                            [(slice_label(s, sizes), slice_finding(s, sizes)) for s in mine],
                            mine))
    return out
