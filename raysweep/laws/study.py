"""The laws of a study: every law of the catalogue fitted per downstream set on a grid's results,
with 95 % bootstrap intervals, the lack-of-fit test and the extrapolation check (laws.checks),
and the boundary per slice; written to OUT/fits.json and OUT/boundary.json (`write_fits`).
`python -m raysweep.fit OUT` prints them.

An input whose term cannot be told apart from another -- a single value in a grid's rows (e.g. one
Df: it merges with E), or one value per value of an earlier input (e.g. one teacher set per student
size: it merges with the size term) -- is left out of that law and named in "inputs_dropped" (the
law is then conditional on it); a law that still has too few rows gets a "status" with the reason
instead of numbers. Terms the data barely constrain (exponent outside EXPONENT_RANGE) are named
in "warnings", as are points measured by several trials (an OUT reused after a sweep's settings
changed: its rows would pass for replicates). A floor the data do not identify -- E's 95 %
interval reaches 0 (its lower end under FLOOR_SHARE of the smallest measured value), or without
a bootstrap E ~ 0 -- is left out: the law is refitted as a sum of power laws alone, and
"E_left_out" says why (E is then 0 by construction, with no interval, rather than pinned at 0
with an interval of [0, 0]). Rows whose target is not > 0 (an error of exactly 0 has no
logarithm) are left out, counted in "rows_skipped".

Left out: per-upstream grouping (a grid has one upstream set; fits group by downstream set) and
the extrapolation check in `--table` mode, which fits one law to a table of the user's.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from collections.abc import Mapping

import numpy as np

from raysweep.errors import InputError
from raysweep.laws import boundary as bnd
from raysweep.laws import candidates as cands
from raysweep.laws.catalogue import BOUNDARY_LAWS, INPUTS, LAWS, PAPER, paper_form
from raysweep.laws.checks import extrapolation_check, lack_of_fit
from raysweep.laws.entries import LawEntry, json_doc
from raysweep.laws.fitting import fit_form
from raysweep.laws.form import EXPONENT, Form, parse
from raysweep.laws.law import Fit
from raysweep.laws.slices import Slice
from raysweep.store import layout, results, storage

DEFAULT_BOOTSTRAP = 200  # resamples for a grid (the grid command's default too)
FLOOR_SHARE = 0.01  # E's interval starting below 1 % of the smallest measured value reaches 0
EXPONENT_RANGE = (0.0, 5.0)  # outside it a term is flagged: the paper's exponents are < 1, and
                             # beyond ~5 a "power law" over a few sizes is a step the data allow


# ---- fitting a grid's results -------------------------------------------------------------

def law_entry(fit: Fit, target: str) -> LawEntry:
    """The entry of one fitted law (fits.json, and `raysweep.fit --table --json`)."""
    return LawEntry(**_law_fields(fit, target))


def _law_fields(fit: Fit, target: str) -> dict:
    out = {"target": target, "n": fit.n, **fit.law.to_dict(), "objective": fit.objective}
    if fit.ci is not None:
        out["ci"] = dict(fit.ci)
    return out


def fit_rows(rows: list[dict], target: str, form: Form, bootstrap: int, seed: int,
             extrapolate: bool = True, judge_floor: bool = True) -> tuple[LawEntry, Fit | str]:
    """(fits.json entry, Fit or the reason there is none) for one form of a law on a grid's rows;
    without EXTRAPOLATE the entry lacks the extrapolation check (half the time of a fit; the
    adaptive rounds use the Fit alone); without JUDGE_FLOOR E is always fitted (the adaptive
    rounds: a law that gains or loses its floor between rounds would move D**p by more than the
    new runs do, and a second bootstrap doubled a round's time; the study's answer, written at
    the end, is judged)."""
    usable = [r for r in rows if r.get(target) is not None and r[target] > 0
              and all(r.get(k) is not None for k in form.inputs)]
    head = {"target": target, "n": len(usable), "rows_skipped": len(rows) - len(usable),
            "expression": form.expression}
    cols = {k: np.array([r[k] for r in usable], dtype=float) for k in form.inputs}
    dropped = _unidentifiable(cols)
    head["inputs_dropped"] = dropped
    try:
        form = form.without(dropped) if dropped and form.power_sum else form
    except InputError:
        return LawEntry(**head, inputs=(), status="no input varies"), "no input varies"
    X = {k: cols[k] for k in form.inputs}
    head |= {"inputs": list(X), "expression": form.expression}
    need = len(form.params)
    why = ("no rows" if not usable else "no input varies" if not X else
           f"cannot leave out {sorted(dropped)}: {form.expression!r} is not a sum of power "
           f"terms" if dropped and not form.power_sum else
           f"too few rows: {len(usable)} for {need} parameters" if len(usable) < need else None)
    if why:
        return LawEntry(**head, status=why), why
    y = np.array([r[target] for r in usable], dtype=float)
    try:
        fit = fit_form(form, X, y, bootstrap=bootstrap, seed=seed, jackknife=bnd.jackknife_refits())
        no_floor = _floor_unidentified(fit, y, target) if judge_floor else None
        if no_floor:
            form = form.without(floor=True)
            fit = fit_form(form, X, y, bootstrap=bootstrap, seed=seed,
                           jackknife=bnd.jackknife_refits())
            head |= {"E_left_out": no_floor, "expression": form.expression}
    except ValueError as err:
        return LawEntry(**head, status=str(err)), str(err)
    checked = {"lack_of_fit": lack_of_fit(X, y, fit.law), "bic": cands.bic(fit, X, y)}
    if extrapolate:
        checked["extrapolation"] = extrapolation_check(X, y, form=form)
    return LawEntry(**(head | _law_fields(fit, target) | checked), status="ok",
                    warnings=_warnings(fit) + _mixed(usable)), fit


def _mixed(rows: list[dict]) -> list[str]:
    """A warning where several trials measured one point (the boundary's slice, Dp and seed;
    different ids, so different settings: an OUT reused after a sweep's settings changed); their
    rows would be fitted, and paired by the boundary, as if they were replicates."""
    if not rows or not all("trial_id" in r and "seed" in r for r in rows):
        return []
    ids: dict[tuple, set] = {}
    for r in rows:
        ids.setdefault(bnd.slice_key(r) + (r["dp"], r["seed"]), set()).add(r["trial_id"])
    mixed = {p: n for p, n in ids.items() if len(n) > 1}
    if not mixed:
        return []
    (_, heads, teachers, df, dp, seed), n = next(iter(mixed.items()))
    example = f"{heads} heads, Dp {dp}, Df {df}, seed {seed}" + (
        f", teachers {'+'.join(map(str, teachers))}" if teachers else "")
    said = (f"rows: {len(mixed)} point{'s' * (len(mixed) > 1)} measured by several trials with "
            f"different settings (e.g. {example}: {len(n)} trials); they are fitted as if "
            f"replicates: keep one setting per OUT")
    return [said]


def _floor_unidentified(fit: Fit, y: np.ndarray, target: str) -> str | None:
    """Why E cannot be told from 0 on these rows, or None where it can."""
    floor = fit.form.floor
    if floor is None:   # a form without a bare constant: nothing to judge
        return None
    if fit.ci is not None:
        lo = fit.ci[floor][0]
        if lo < FLOOR_SHARE * y.min():
            return (f"E's 95 % interval reaches 0 (its lower end {lo:.2g} is under "
                    f"{FLOOR_SHARE * 100:g} % of the smallest {target}, {y.min():.3g}): the rows "
                    f"show no floor, so the law is fitted without one")
    elif fit.law.E < 1e-6 * y.min():  # e ran off to -inf: the optimum lies on the E = 0 boundary
        return "E ran to 0 in the fit: the rows show no floor, so the law is fitted without one"
    return None


def _unidentifiable(cols: dict[str, np.ndarray]) -> dict[str, str]:
    """Inputs whose term cannot be told apart from another: a single value (merges with E), or
    one value per value of an earlier input (e.g. one teacher set per student size: the teacher
    term merges with the size term). Later inputs are the ones dropped."""
    dropped, kept = {}, []
    for k, v in cols.items():
        if len(v) and np.unique(v).size == 1:
            dropped[k] = f"single value {v[0]:g}"
            continue
        for j in kept:
            pairs = np.unique(np.stack([v, cols[j]]), axis=1).shape[1]
            if pairs == np.unique(v).size == np.unique(cols[j]).size:
                dropped[k] = f"confounded with {j}: one value of {k} per value of {j}"
                break
        else:
            kept.append(k)
    return dropped


def _warnings(fit: Fit) -> list[str]:
    """Exponents outside EXPONENT_RANGE, named by their input where the form has one per input."""
    lo, hi = EXPONENT_RANGE
    named = {k: x for k, (_, x) in fit.law.terms.items()} or {
        p: abs(v) for p, v in fit.law.values.items() if fit.form.roles[p] == EXPONENT}
    return [f"{k}: exponent {x:.3g} outside [{lo:g}, {hi:g}]; the data barely constrain this term"
            for k, x in named.items() if not lo <= x <= hi]


def candidate_forms(offered: Mapping | None) -> dict[str, dict[str, Form]]:
    """Law -> {form name: Form}: the paper's under PAPER, then the OFFERED ones (a sweep's
    `laws:` section, {law: {name: expression}}), in the order given."""
    out = {name: {PAPER: paper_form(name)} for name in LAWS}
    for law, forms in (offered or {}).items():
        if law not in LAWS:
            raise InputError(f"laws.{law}: unknown law; expected one of {list(LAWS)}")
        for name, expression in forms.items():
            form = parse(expression, INPUTS)
            if name == PAPER and form.expression != out[law][PAPER].expression:
                raise InputError(f"laws.{law}.{PAPER}: the name {PAPER!r} is the catalogue's "
                                 f"form ({out[law][PAPER].expression!r}); give this one another "
                                 f"name")
            out[law][name] = form
    return out


def fit_law_forms(rows: list[dict], name: str, forms: Mapping[str, Form], bootstrap: int,
                  seed: int) -> tuple[LawEntry, dict[str, Fit | str]]:
    """(fits.json entry of law NAME: the selected form's entry at top level, with "selected",
    "why_selected" and every candidate under "forms"; {form name: Fit or why not})."""
    target = LAWS[name].target
    entries, found = {}, {}
    for form_name, form in forms.items():
        entries[form_name], found[form_name] = fit_rows(rows, target, form, bootstrap, seed)
    chosen, why = cands.select(entries)
    chosen = chosen or PAPER
    return entries[chosen].with_candidates(chosen, why, entries), found


def fit_results(table, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                offered: Mapping | None = None) -> tuple[dict, list[Slice]]:
    """(fits.json object, its law entries LawEntries (laws/entries.py); boundary.json list)
    for a results table (pyarrow.Table, dict of columns or list of row dicts; only status ==
    "ok" rows are used). OFFERED: candidate forms per law ({law: {name: expression}}) compared
    with the paper's."""
    rows = bnd.ok_rows(table)
    forms = candidate_forms(offered)
    per_ds: dict[str, dict] = {}
    fits: dict[str, dict] = {}
    paper: dict[str, dict] = {}
    for ds in sorted({r["downstream"] for r in rows if r.get("downstream") is not None}):
        per_ds[ds], fits[ds], paper[ds] = {}, {}, {}
        for name, spec in LAWS.items():
            mine = [r for r in rows if r["downstream"] == ds and r["stage"] == spec.stage]
            per_ds[ds][name], found = fit_law_forms(mine, name, forms[name], bootstrap, seed)
            fits[ds][name], paper[ds][name] = found[per_ds[ds][name].selected], found[PAPER]
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    doc = {"downstream": per_ds, "bootstrap": bootstrap, "created": created,
           "candidates": {law: {k: f.expression for k, f in fs.items() if k != PAPER}
                          for law, fs in forms.items() if len(fs) > 1}}
    slices = [dataclasses.replace(s, forms={law: per_ds[s.downstream][law].selected
                                            for law in BOUNDARY_LAWS})
              for s in bnd.boundaries(rows, fits, paper=paper)]
    return doc, slices


def write_fits(out: str, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
               offered: Mapping | None = None, table=None) -> tuple[dict, list[Slice]]:
    """Fit OUT's results (TABLE, when the caller has read them: results.read); write
    OUT/fits.json (its entries through LawEntry.to_json) and OUT/boundary.json; return both
    objects (fit_results'). Without OFFERED, the candidates a previous fits.json under OUT
    recorded are fitted again."""
    if offered is None:
        offered = previous_candidates(out)
    doc, slices = fit_results(results.read(out) if table is None else table, bootstrap, seed,
                              offered)
    for rel, obj in ((layout.FITS, json_doc(doc)),
                     (layout.BOUNDARY, [s.to_json() for s in slices])):
        storage.write_bytes(out, rel, json.dumps(finite(obj), indent=1).encode())
    return doc, slices


def previous_candidates(out: str) -> dict:
    """The candidate forms OUT/fits.json was fitted with ({} without one)."""
    if not storage.exists(out, layout.FITS):
        return {}
    return json.loads(storage.read_bytes(out, layout.FITS)).get("candidates") or {}


def finite(obj):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
