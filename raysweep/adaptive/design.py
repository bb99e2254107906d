"""The design rule: the runs that would shrink the boundary's intervals most per FLOP they cost.

A sequential, locally optimal design (Chernoff 1953; Box & Lucas 1959) for the D**p of every
chased slice. At the current fit the delta method gives each slice's Var(log D**p) from the two
laws' information (adaptive/information.py), rescaled per slice to the variance its bootstrap
interval says (information.calibration), the measure the loop judges a slice by: the linearised
variance alone is first order at the point fit, and where D**p lies far from the data it rated a
slice whose interval the bootstrap left open as nearly settled, so the rounds went to slices
already narrow and the open one never closed (BENCHMARKS.md, "Adaptive sampling in compute").
The rescaling keeps the rule's ranking of shapes and places within a slice and sets how much each
slice's drop counts. An option adds rows to the two laws -- every plain fine-tune in it one row of
the error law, every distillation one of the distilled law -- so what
it would take off the summed variance of the chased slices is a rank-k update (Woodbury), exact
for every option. Its cost is the FLOPs (plan.flops) of the trials it adds that have not run and
are not picked yet: pretrainings that exist are reused for free, and one picked this round is
paid for once.

Options come in every shape the study allows, at each candidate Dp (log-spaced over a chased
slice's current 95 % interval of D**p, and every Dp measured inside it: where the boundary is
still uncertain) and for each downstream set with a chased slice:
  pair       one slice's plain fine-tune and distillation (the teachers' fine-tunes, and every
             pretraining, come with it when missing);
  fine-tune  one model size's plain fine-tune at one Df: the cheapest row of the error law;
  Df row     every pair and fine-tune of one Df;
  row        the sweep's whole row at that Dp: every Df, every size, every teacher set.
Slices not chased count as well: their rows inform the parameters every slice shares. At a measured
Dp an option runs its trials with the next replicate's seeds (choice.replicate_seeds): new
initialisations and new subsets, with new pretrainings to pay for. Options are picked greedily by
variance drop per FLOP, SIT.BATCH of them a round; after each pick the information and the set of
taken trials are updated, so a second option at the same Dp pays only for what the first lacks
(a partial row grows one pair at a time when that is the better buy). The noise level scales every
drop alike, so the rule needs no estimate of it.

Measured and not the default (ROW_TEST): weighing every pick against the plain denser row (the
sweep's row at the log-midpoint of the widest gap between complete rows, the grid refined as a
user would refine it; adaptive/denser.py) under the first bootstrap members, and taking the row
where the pick does not beat it under denser.CREDIBLE of them. On random truths at a 1x budget it
did not end narrower than the rule alone, before the rescaling or after it, and its worst truth
was worse (BENCHMARKS.md, "Adaptive sampling in compute"): the rows it takes sit where the grid is
sparsest, far from the crossings.

Why options stay inside the intervals: ranked per FLOP over the sweep's whole range, the rule
spent most of its budget at the smallest Dp, where pretraining is cheapest and the linearised
drops looked as large as elsewhere, and the bootstrap intervals did not narrow; the first-order
model overrates far-away rows on laws whose E, coefficient and exponent trade off. Inside the
intervals it only decides shape and amount, and the bootstrap agrees (BENCHMARKS.md, "Adaptive
sampling in compute").

Left out: ranking by the ensemble (averaging the drops over bootstrap fits was measured and did
not help, BENCHMARKS.md; the members only test a pick against the row), and Df values the sweep
does not list (each would be a new slice of the report). How it compares with a denser grid of the
same compute: BENCHMARKS.md, "Adaptive sampling in compute".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from raysweep.adaptive import denser, information, proposals
from raysweep.adaptive.choice import REPEAT_GAP, Situation, advantage_samples, pair_ids
from raysweep.laws import boundary as bnd
from raysweep.sweep import plan

CANDIDATES = 40   # log-spaced Dp values over the sweep's range (a slice with no interval yet)
BAND_POINTS = 9   # ... over a chased slice's 95 % interval of D**p
SHAPES = ("pair", "fine-tune", "Df row", "row")
REASON = "largest expected drop of the D**p intervals per FLOP"
DENSER = "a denser row: no option's expected drop per FLOP credibly above it"


@dataclasses.dataclass
class _Option:
    shape: str
    downstream: str
    dp: int
    members: list[proposals.Candidate]      # its pairs and fine-tunes, as the loop plans them
    trials: list[plan.Trial]                # everything they need, prerequisites included


def design_rule(sit: Situation, per: str = "FLOP", shapes=SHAPES, band: bool = True,
                row_test: bool = False, calibrate: bool = True) -> list[proposals.Candidate]:
    """SIT.BATCH options, and more until they cost SIT.MIN_FLOPS, greedily, by expected drop of
    the chased slices' Var(log D**p) per FLOP, each within what is left of the budget (SIT.LEFT);
    returned as their members (pairs and fine-tunes), each scored by its option's drop per FLOP.
    The arguments are for benchmarks (BENCHMARKS.md): PER "trial" ranks per trial added, SHAPES
    limits the options, BAND False lets options sit anywhere in the sweep's Dp range, ROW_TEST
    weighs every pick against the plain denser row (adaptive/denser.py) and takes the row where
    the pick's gain is not credibly above it, CALIBRATE False ranks by the delta method's
    variances as they are (the rule before information.calibration)."""
    chased = sorted({s.downstream for s in sit.targets})
    mine = {ds: ([r for r in sit.rows if r["downstream"] == ds],
                 [s for s in sit.targets if s.downstream == ds]) for ds in chased}
    laws = {ds: information.Laws(sit.fits[ds], *mine[ds], calibrate=calibrate) for ds in chased}
    members = {ds: denser.member_laws(sit.fits[ds], *mine[ds])
               for ds in chased} if row_test else {}
    taken = set(sit.done) | {r["trial_id"] for r in sit.rows}
    dps = _candidate_dps(sit, band)
    p_win = _winning_shares(sit, dps)
    options = [o for o in _options(sit, chased, dps, taken) if o.shape in shapes]
    jac = information.trial_jacobians(laws, {t.trial_id: t for o in options for t in o.trials})
    full = {ds: denser.full_rows(sit.sweep, sit.rows, ds, taken)
            for ds in chased} if row_test else {}
    picked: list[proposals.Candidate] = []
    left = sit.left
    picks, flops = 0, 0.0
    while picks < sit.batch or flops < sit.min_flops:
        best = _best(options, laws, jac, taken, left, sit.cost, per)
        if row_test:
            rows = [_denser_row(sit, ds, full[ds], taken) for ds in chased]
            jac |= information.trial_jacobians(
                laws, {t.trial_id: t for o in rows if o for t in o.trials})
            row = _best([o for o in rows if o], laws, jac, taken, left, sit.cost, per)
            if row and (best is None or not denser.credible(best, row, members, per)):
                best, full[row[1].downstream] = row, sorted([*full[row[1].downstream], row[1].dp])
        if best is None or not best[0] > 0:
            break
        score, o, new, price = best
        laws[o.downstream].add(information.stack(jac, new))
        denser.add(members.get(o.downstream, []), new)
        taken |= {t.trial_id for t in new}
        picks, flops, left = picks + 1, flops + price, left - sit.cost(new)
        picked += [dataclasses.replace(c, score=float(score), shape=o.shape,
                                       p_positive=p_win.get((c.slice_key, c.dp), math.nan))
                   for c in o.members]
    return picked


def _best(options: list[_Option], laws: dict, jac: dict, taken: set[str], left: float, cost,
          per: str) -> tuple | None:
    """(score, option, its new trials, their FLOPs) of the option of OPTIONS with the largest
    expected drop per FLOP (PER "trial": per trial) that LEFT affords, or None."""
    best = None
    for o in options:
        new = [t for t in o.trials if t.trial_id not in taken]
        price = sum(t.flops for t in new)
        if not new or not price or cost(new) > left:
            continue
        score = laws[o.downstream].drop(information.stack(jac, new)) / (
            price if per == "FLOP" else len(new))
        if best is None or score > best[0]:
            best = (score, o, new, price)
    return best


def _denser_row(sit: Situation, ds: str, full: list[int], taken: set[str]) -> _Option | None:
    """The plain denser row of downstream set DS (denser.row_dp: the widest gap between the Dp
    values of its full rows FULL, halved), as the pairs and fine-tunes it still lacks."""
    dp = denser.row_dp(full, sorted({r["dp"] for r in sit.rows}), REPEAT_GAP)
    if dp is None:
        return None
    row = next(o for o in _options(sit, [ds], [dp], taken, again=False) if o.shape == "row")
    planner = plan.Planner(sit.sweep)
    lacking = [dataclasses.replace(c, reason=DENSER) for c in row.members
               if not set(pair_ids(planner, c)) <= taken]
    return dataclasses.replace(row, members=lacking)


def _candidate_dps(sit: Situation, band: bool = True) -> list[int]:
    """Where options may sit: BAND_POINTS log-spaced over each chased slice's 95 % interval of
    D**p, clipped to the sweep's range, and every measured Dp inside one (a slice with no interval
    yet, or no BAND: CANDIDATES over the whole range). A log-spaced value within REPEAT_GAP of a
    measured one gives way to it."""
    full = (*sit.dp_range, CANDIDATES)
    spans = [(*s.cross_interval(), BAND_POINTS) if s.cross_interval() else full
             for s in sit.targets] if band else [full]
    measured = np.array(sorted({r["dp"] for r in sit.rows}), dtype=float)
    out: set[int] = set()
    for lo, hi, n in spans:
        lo, hi = max(lo, sit.dp_range[0]), min(hi, sit.dp_range[1])
        if lo <= hi:
            out |= {int(m) for m in measured if lo <= m <= hi}
            for d in proposals.candidate_dps(lo, hi, n):
                gap = np.abs(np.log10(measured / d)) if measured.size else np.array([np.inf])
                out.add(int(measured[gap.argmin()]) if gap.min() < REPEAT_GAP else int(d))
    return sorted(out)


def _options(sit: Situation, downstreams: list[str], dps: list[int], taken: set[str],
             again: bool = True) -> list[_Option]:
    """Every option of every shape at every Dp of DPS, for the downstream sets DOWNSTREAMS; AGAIN
    False: each pair at its first replicate even where that ran (the rest of a partial row)."""
    planner = plan.Planner(sit.sweep)
    downs = {d.name: d for d in sit.sweep.downstream}
    dfs = sorted({planner.df_images(downs[ds], a) for ds in downstreams for a in sit.sweep.df})
    out = []
    for ds in downstreams:
        for dp in dps:
            units = {}   # (teachers or (), heads, df) -> (Candidate, its trials)
            for df in dfs:
                for heads in sit.sweep.model["heads"]:
                    for teachers in [(), *map(tuple, sit.sweep.teachers.get(heads, ()))]:
                        key = (ds, heads, teachers, df)
                        units[teachers, heads, df] = _unit(planner, key, dp, taken, again)
            out += [_Option("pair" if k[0] else "fine-tune", ds, dp, [c], trials)
                    for k, (c, trials) in units.items()]
            for df in dfs:
                out.append(_merge("Df row", ds, dp, [u for k, u in units.items() if k[2] == df]))
            out.append(_merge("row", ds, dp, list(units.values())))
    return out


def _unit(planner: plan.Planner, key: tuple, dp: int, taken: set[str], again: bool = True
          ) -> tuple[proposals.Candidate, list[plan.Trial]]:
    """The pair (or, with no teachers, the fine-tune) of slice KEY at DP, at its first replicate
    not yet run (AGAIN False: the first), and every trial it needs."""
    c = proposals.Candidate(key, dp, 0.0, math.nan, REASON)
    while set(ids := pair_ids(planner, c)) <= taken and again:
        c = dataclasses.replace(c, replicate=c.replicate + 1)
    needed, stack = set(), list(ids)
    while stack:
        i = stack.pop()
        if i not in needed:
            needed.add(i)
            stack += planner.trials[i].depends_on
    return c, [planner.trials[i] for i in sorted(needed)]


def _merge(shape: str, ds: str, dp: int, units: list) -> _Option:
    trials = {t.trial_id: t for _, ts in units for t in ts}
    return _Option(shape, ds, dp, [c for c, _ in units], list(trials.values()))


def _winning_shares(sit: Situation, dps: list[int]) -> dict[tuple, float]:
    """(slice key, Dp) -> P(distillation wins there) over the ensemble, for every chased slice."""
    grid = np.array(sorted(dps))
    out = {}
    for s in sit.targets:
        p = proposals.winning_share(advantage_samples(sit.fits[s.downstream], s, grid))
        if p is not None:
            out |= {(bnd.slice_key(s), int(d)): float(q) for d, q in zip(grid, p)}
    return out
