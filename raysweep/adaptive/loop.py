"""The adaptive rounds of `--target boundary`: measure where the distillation boundary is still
uncertain, refit, repeat, until every slice's D**p is pinned down or the budget is spent.

`rounds` owns the flow, top to bottom (the decisions live in raysweep.adaptive.choice):
  0. OUT holds no results: run the sweep's grid (round 0).
  1. Fit the two error laws with bootstrap and locate every slice's D**p with its 95 % interval.
     Chase the slices whose laws cross inside the measured Dp range and whose interval is wider
     than --tol relative, (hi - lo) / D**p; none left: done. Not where the seeds' measured
     differences do not cross in most of their draws (choice.contradicted): that crossing is
     the laws' form, not the slice's data. A slice whose laws do not cross there but whose
     measured differences do is chased on them instead (choice.measured_rule:
     its model-free crossing's interval against --tol); one that crosses neither way is
     reported, not chased. While some chased slice is wider than FAR x --tol the round refits
     with 1/QUICK of the resamples: no interval can stop the rounds then, and the design rule
     reads the point fit; a round that may stop refits with all of them.
  2. Choose K proposals (--rule; the design rule adds more until they cost 1/ROUNDS of a budget
     in compute, so a budget is spent in about ROUNDS rounds whatever the size of the options),
     at image counts between the sweep's smallest and largest Dp:
     design    (the default; adaptive/design.py) the pairs, fine-tunes and whole or partial Dp
               rows expected to shrink the chased slices' D**p intervals most per FLOP they
               add, pretrainings included, inside the slices' current intervals;
     crossing  (adaptive/proposals.py) per slice, where the ensemble's D**p splits evenly,
               spread out and cost-weighted.
  3. Plan each -- plain fine-tune and (for a slice with teachers) distillation at that Dp, every
     seed, plus the pretrainings they need, finished ones reused -- keep those the budget
     affords, run them, refit, append the round to OUT/adaptive.json (through raysweep.store, so
     s3:// works) and print one short line: the trials it ran, the budget spent and left, the
     slices pinned, the widest interval left (`short_line`); with --verbose also what was
     proposed and why (`round_line`), and at the end why each slice not chased was not.
The budget (adaptive/budget.py: trials, FLOPs, GPU-hours or a multiple of the grid's compute)
counts what rounds 1, 2, ... launch; round 0 is the sweep's own grid. adaptive.json carries the
trials and FLOPs of every round, and the budget's amount, spent and left.
At the end cli.finish writes fits.json, boundary.json and the report, as the grid command does.

Resuming is rerunning: adaptive.json gives the round count and the budget spent, the results give
the rest, and a trial that has a result is never run again (the runner skips it).

Left out, on purpose:
- trials of a round that was interrupted never count toward the budget (nor are they run again:
  their results are in OUT);
- D*p as a target: the rounds chase D**p, where the sign of F -- what a user acts on -- flips;
- a non-zero exit when the budget runs out first: the command did what it was asked, and the last
  line says why it stopped.
"""


from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable

from raysweep.adaptive import proposals
from raysweep.adaptive.budget import DEFAULT as DEFAULT_BUDGET
from raysweep.adaptive.budget import Budget, amount_words
from raysweep.adaptive.choice import (
    Situation,
    affordable,
    chased,
    chased_measured,
    contradicted,
    crossing_rule,
    dp_range,
    fit_boundary,
    measured_dps,
    measured_rule,
    pursued,
    rel_width,
    selected_forms,
    width,
)
from raysweep.adaptive.design import design_rule
from raysweep.errors import InputError
from raysweep.laws import boundary as bnd
from raysweep.laws import study as fit
from raysweep.laws.slices import Slice
from raysweep.run import trial as trial_mod
from raysweep.store import layout, results, storage
from raysweep.sweep import plan
from raysweep.sweep.spec import Sweep

MIN_BOOTSTRAP = 20  # fewer resamples give no usable 95 % interval
QUICK = 4           # a round far from --tol refits with 1/QUICK of the resamples (see rounds)
FAR = 2.0           # ... "far": some chased slice is wider than FAR x --tol
ROUNDS = 8          # a round spends at least 1/ROUNDS of a compute budget: few rounds, few refits
RULES = {"crossing": crossing_rule, "design": design_rule}  # --rule: where a round's trials go
WIDTH = 100         # columns of a round's short line
FEW = 3             # end lines (slices not chased and why) printed without --verbose
WHOLE = ("row", "Df row")   # shapes a round line counts as one proposal, not by their runs
DEFAULTS = {"budget": DEFAULT_BUDGET, "batch": 8, "tol": 0.2, "rule": "design"}


# ---- the loop ------------------------------------------------------------------------------

def say(line: str) -> None:
    """A round's line, flushed: piped into a file or `tee`, it shows when the round ends."""
    print(line, flush=True)


def rounds(sweep: Sweep, out: str, runner: Callable[[list], int], budget: Budget | int,
           batch: int, tol: float, bootstrap: int, echo: Callable[[str], None] = say,
           choose: Callable[[Situation], list] = design_rule, verbose: bool = False) -> dict:
    """Run rounds until every chased slice is within TOL or BUDGET (a Budget, or a whole number
    of trials) is spent; returns the adaptive.json object (also written to OUT). VERBOSE: each
    round's proposals too, and why each slice not chased is not."""
    limit = budget if isinstance(budget, Budget) else Budget("trials", budget, str(budget))
    doc = read_doc(out)
    picked, ran = [], None   # the last round's proposals and (trials, FLOPs), not yet in DOC
    if not results.finished_ids(out):
        grid = plan.plan(sweep)
        ran = (runner(grid), sum(t.flops for t in grid))   # round 0: the sweep's grid
    forms = None   # the sweep's candidate forms are compared once, on the grid's rows
    while True:
        table = results.read(out)
        rows = bnd.ok_rows(table)
        if forms is None:
            forms = selected_forms(sweep.laws, rows) if sweep.laws else {}
        left = limit.amount - spent(doc, limit) - (_charge(ran, limit) if picked else 0.0)
        done = results.finished_ids(table)
        args = (sweep, rows, done, tol, batch, left, limit, choose)
        # Far from TOL no interval can stop the rounds, and the design rule reads the point fit:
        # fewer resamples do. A round that may stop on TOL, or does stop, fits with all of them.
        b = max(MIN_BOOTSTRAP, bootstrap // QUICK)
        fitted = fit_boundary(rows, b, forms=forms)
        if b < bootstrap and not any(rel_width(s) > FAR * tol for s in fitted[1] if chased(s)):
            b, fitted = bootstrap, fit_boundary(rows, bootstrap, forms=forms)
        slices, chosen, trials, stop = decide(*args, *fitted)
        if stop and b < bootstrap:
            slices, chosen, trials, stop = decide(*args, *fit_boundary(rows, bootstrap, forms=forms))
        if ran is not None:
            record(doc, out, picked, ran, slices, tol, limit, echo, verbose)
        if stop:
            break
        picked = chosen
        ran = (runner(trials), sum(t.flops for t in trials))
    doc |= {"boundary": [s.to_json() for s in slices], "stopped": stop, "trials_total": table.num_rows,
            "budget": limit.json(spent(doc, limit))}
    write_doc(out, doc)
    echo(f"stopped: {stop}")
    lines = end_lines(slices)
    for line in lines if verbose or len(lines) <= FEW else []:
        echo(line)
    if len(lines) > FEW and not verbose:
        echo(f"  {len(lines)} slices not chased by their laws: why, with --verbose "
             f"(adaptive.json holds each slice)")
    return doc


def decide(sweep: Sweep, rows: list[dict], done: set[str], tol: float, batch: int, left: float,
           limit: Budget, choose: Callable, fits: dict, slices: list[Slice]) -> tuple:
    """(slices, proposals, their trials, why the rounds stop or None) of a round, from its fit:
    CHOOSE places the trials for the slices whose laws cross, measured_rule for those chased on
    their measurements."""
    targets = [s for s in slices if pursued(s) and width(s) > tol]
    if not targets:
        return slices, [], [], stop_reason(slices, targets, [], [], left, limit)
    measured = measured_dps(rows)
    wanted = []
    if by_laws := [s for s in targets if chased(s)]:
        least = min(left, limit.amount / ROUNDS) if limit.unit == "FLOPs" else 0.0
        sit = Situation(sweep, fits, by_laws, measured, dp_range(sweep), batch, rows,
                        frozenset(done), least, left, limit.cost)
        wanted = choose(sit)
        if not wanted:   # nothing the budget affords, or nothing left to measure at all?
            wanted = choose(dataclasses.replace(sit, left=math.inf))
    wanted += measured_rule([s for s in targets if chased_measured(s)], measured,
                            len(sweep.seeds), batch)
    chosen, trials = affordable(sweep, wanted, done, left, limit.cost)
    return slices, chosen, trials, stop_reason(slices, targets, wanted, chosen, left, limit)


def spent(doc: dict, limit: Budget) -> float:
    """What rounds 1, 2, ... in DOC have spent, in LIMIT's unit (the grid, round 0, is outside
    it)."""
    return sum(_charge((r["trials_run"], r.get("flops_run") or 0.0), limit)
               for r in doc["rounds"] if r["round"] > 0)


def _charge(ran: tuple[int, float], limit: Budget) -> float:
    return float(ran[0] if limit.unit == "trials" else ran[1])


def stop_reason(slices: list[Slice], targets: list, wanted: list, picked: list,
                left: float, limit: Budget) -> str | None:
    if not any(pursued(s) for s in slices):
        return ("no slice's laws cross inside the measured Dp range where its measurements "
                "agree, nor do its measured differences cross: nothing to pin down")
    if not targets:
        return "every chased slice's D**p interval is within --tol"
    if not wanted:
        return "every Dp where D**p is still uncertain has been measured already"
    if not picked:
        return (f"budget spent: {amount_words(max(left, 0.0), limit.unit)} left, "
                f"the next proposal needs more")
    return None


def record(doc: dict, out: str, picked: list, ran: tuple[int, float], slices: list[Slice],
           tol: float, limit: Budget, echo, verbose: bool = False) -> None:
    """Append a round (PICKED proposals, RAN trials and FLOPs, the refitted SLICES) to DOC, write
    adaptive.json and print the round's short line (and with VERBOSE its full one)."""
    number = max((r["round"] for r in doc["rounds"]), default=0) + 1 if picked else 0
    doc["rounds"].append({"round": number, "proposals": [proposal_json(c) for c in picked],
                          "trials_run": ran[0], "flops_run": ran[1],
                          "boundary": [s.to_json() for s in slices]})
    doc["trials_run"] = doc.get("trials_run", 0) + ran[0]
    doc["flops_run"] = (doc.get("flops_run") or 0.0) + ran[1]
    doc["budget"] = limit.json(spent(doc, limit))
    write_doc(out, doc)
    echo(short_line(number, ran, slices, tol, limit, spent(doc, limit)))
    if verbose:
        echo("  " + round_line(number, picked, ran, slices, tol, limit.words(spent(doc, limit))))


def proposal_json(c: proposals.Candidate) -> dict:
    ds, heads, teachers, df = c.slice_key
    return {"downstream": ds, "student_heads": heads, "teacher_heads": list(teachers), "df": df,
            "dp": c.dp, "replicate": c.replicate, "shape": c.shape, "score": c.score,
            "p_positive": c.p_positive, "reason": c.reason}


def read_doc(out: str) -> dict:
    if not storage.exists(out, layout.ADAPTIVE):
        return {"rounds": [], "trials_run": 0}
    doc = json.loads(storage.read_bytes(out, layout.ADAPTIVE))
    if not isinstance(doc, dict) or not isinstance(doc.get("rounds"), list):
        raise InputError(
            f"{out}/{layout.ADAPTIVE}: expected an object with a 'rounds' list; move it away to "
            f"start the adaptive rounds afresh")
    return doc


def write_doc(out: str, doc: dict) -> None:
    storage.write_bytes(out, layout.ADAPTIVE, json.dumps(fit.finite(doc), indent=1).encode())


# ---- printed lines -------------------------------------------------------------------------

def label(s: Slice) -> str:
    teachers = "+".join(map(str, s.teacher_heads))
    return f"{s.downstream} {s.student_heads}h<-{teachers}h Df={s.df}"


def short_line(number: int, ran: tuple[int, float], slices: list[Slice], tol: float,
               limit: Budget, used: float) -> str:
    """'round 2: 58 trials, spent 5.2e12 FLOPs, 5.4e12 left; 1/3 pinned; widest 4h<-2h Df 10:
    50.6 [41, 57.5]': a round in one line of at most WIDTH columns (round_line has the rest)."""
    grid = " (the grid)" if number == 0 else ""
    head = (f"round {number}: {ran[0]} trials{grid}, spent {_num(used)} {limit.unit}, "
            f"{_num(max(limit.amount - used, 0.0))} left")
    chased_ = [s for s in slices if pursued(s)]
    if not chased_:
        return f"{head}; no slice to pin"
    done = sum(width(s) <= tol for s in chased_)
    w = max(chased_, key=width)
    value, ci = judged(w)
    at = f"{_num(value)}" + (f" [{_end(ci[0])}, {_end(ci[1])}]" if ci else "")
    h, teachers, df = w.student_heads, "+".join(map(str, w.teacher_heads)), _num(w.df)
    for who in (f"{h}h<-{teachers}h Df {df}", f"{h}h Df {df}", f"{h}h/{df}"):  # as room allows
        line = f"{head}; {done}/{len(chased_)} pinned; widest {who}: {at}"
        if len(line) <= WIDTH:
            break
    return line


def judged(s: Slice) -> tuple[float, tuple[float, float] | None]:
    """(value, 95 % interval) a pursued slice is judged by: the model-free crossing's where it is
    chased on its measurements, else D**p's (0 / inf ends: open)."""
    if chased_measured(s):
        return s.model_free_cross, s.measured_interval()
    return s.d_cross, s.cross_interval()


def _end(x: float) -> str:
    """An interval's end in a round's line: 'open' at 0 or infinity."""
    return _num(x) if 0 < x < math.inf else "open"


def _num(x: float) -> str:
    """An amount for a round's line: 775000 -> '775k', 1.06e13 -> '1.1e13' (FLOPs: 2 digits)."""
    for scale, suffix in ((1e9, None), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x:.2g}".replace("e+", "e") if suffix is None else f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def round_line(number: int, picked: list, ran: tuple[int, float], slices: list[Slice],
               tol: float, spending: str = "") -> str:
    what = _proposed(picked) if number else "the sweep's grid"
    chased_ = [s for s in slices if pursued(s)]
    done = sum(width(s) <= tol for s in chased_)
    cost = f"{ran[0]} trials run, {ran[1]:.3g} FLOPs" + (f" ({spending})" if spending else "")
    on_data = sum(chased_measured(s) for s in chased_)
    which = f" ({on_data} by the measured crossing)" if on_data else ""
    head = f"round {number}: {what}; {cost}; {done}/{len(chased_)} slices{which} within {tol:g}"
    if not chased_:
        return head
    widest = max(chased_, key=width)
    name = "model-free crossing" if chased_measured(widest) else "D**p"
    return f"{head}; widest {label(widest)}: {name} {interval_words(widest)}"


def end_lines(slices: list[Slice]) -> list[str]:
    """A line for each slice not chased by its laws at the end: chased on its measurements, or
    not chased and why."""
    lines = []
    for s in slices:
        if chased_measured(s):
            lines.append(f"  chased on its measurements: {label(s)}: model-free crossing "
                         f"{interval_words(s)}; the laws: {s.status}")
        elif contradicted(s) and s.status == bnd.STATUS["ok"]:
            lines.append(f"  not chased: {label(s)}: the laws cross at {s.d_cross:.4g}, but "
                         f"in {s.model_free_no_cross_fraction:.0%} of the seed draws the "
                         f"measured differences do not cross")
        elif not chased(s):
            lines.append(f"  not chased: {label(s)}: {s.status}")
    return lines


def interval_words(s: Slice) -> str:
    """'117 [84.2, 160] (width 0.65)': the value a pursued slice is judged by, its interval, and
    its relative width or in words why it has none."""
    value, ci = judged(s)
    ci = ci or [math.nan, math.nan]
    return f"{value:.4g} [{ci[0]:.4g}, {ci[1]:.4g}] ({width_words(s)})"


def width_words(s: Slice) -> str:
    """The relative width of a slice's interval, or in words why it has none."""
    w = width(s)
    if math.isfinite(w):
        return f"width {w:.2f}"
    if chased_measured(s):
        if s.model_free_cross_ci is None:
            return "no interval: one seed per Dp, no spread to draw from"
        share = s.model_free_no_cross_fraction or 0.0
        return (f"no bound: in {share:.0%} of the seed draws the measured differences do not "
                f"cross")
    if s.cross_interval() is None:
        return "no interval: no bootstrap"
    below, above = s.no_cross_below or 0.0, s.no_cross_above or 0.0
    side = ("no lower bound" if below > above else "no upper bound")
    return (f"{side}: {max(below, above):.0%} of the bootstrap fits do not cross in the "
            f"plausible Dp range")


def _proposed(picked: list) -> str:
    """'a row and 2 pairs (23 runs in 9 slices) at Dp 2.4e+05-3e+05, ... (why; P(...) ...)'."""
    dps = [c.dp for c in picked]
    p = [c.p_positive for c in picked if math.isfinite(c.p_positive)]
    slices = len({c.slice_key for c in picked})
    again = sum(c.replicate > 0 for c in picked)
    repeats = f", {again} at a measured Dp with new seeds" if again else ""
    shapes = Counter(c.shape for c in {(c.shape, c.dp, c.score, c.slice_key[0]): c
                                       for c in picked if c.shape in WHOLE}.values())
    shapes |= Counter(c.shape for c in picked if c.shape not in WHOLE)
    what = " and ".join(f"{n} {s}{'s' * (n > 1)}" for s, n in shapes.items())
    runs = "" if set(shapes) == {"pair"} else f" ({len(picked)} runs)"
    chance = f"; P(distillation wins) {min(p):.2f}-{max(p):.2f}" if p else ""
    return (f"{what}{runs} in {slices} slice{'s' * (slices > 1)} at Dp {min(dps):.3g}-"
            f"{max(dps):.3g}{repeats} ({picked[0].reason}{chance})")


# ---- runners and targets ---------------------------------------------------------------------

def inline_runner(out: str) -> Callable[[list], int]:
    """Runs trials one by one in this process, no Ray: for simulate sweeps in tests and
    benchmarks, where a trial takes microseconds and Ray's start-up would dominate."""
    ctx = trial_mod.Context(out)

    def run(trials: list) -> int:
        done = results.finished_ids(out)
        todo = [t for t in trials if t.trial_id not in done]
        for t in todo:
            trial_mod.run(t, ctx)
        return len(todo)
    return run
