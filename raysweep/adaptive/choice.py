"""One adaptive round's decisions: where the boundary stands, which slices to chase, where to
measure next, and which trials that means. Pure planning and fitting; adaptive/loop.py runs it.

- `fit_boundary`: the two error laws with bootstrap (laws.study.fit_rows), then every slice's D**p
  with its 95 % interval (laws.boundary.boundaries).
- `chased` / `rel_width`: a slice is chased while its laws cross inside the measured Dp range and
  its seeds' measured differences cross in at least CROSSING_SHARE of their draws (where the
  seeds give draws; `contradicted`: a crossing the measurements do not show is not chased); it is
  settled once (hi - lo) / D**p <= tol and at most 2.5 % of the ensemble fails to cross (more, and
  the interval would reach past the plausible range on that side).
- `chased_measured` / `width` / `measured_rule`: a slice whose laws do not cross there but whose
  measured differences do (the model-free crossing, in at least half of its seed draws) is chased
  on the measurements: each round bisects the bracket of measured Dp around the crossing (a pair
  at its geometric midpoint) and repeats the pair at both ends with new seeds, until the
  model-free interval is within tol, or the crossing is gone. The joint laws cannot place such a
  crossing (eq. 1 and eq. 4 give F one shape in every slice; docs/boundary.md), so no law-based
  rule can aim at it; this one needs no law.
- `crossing_rule` (`--rule crossing`; the default, `--rule design`, is adaptive/design.py's):
  the proposals module's rule on each chased slice's ensemble of F(Dp), over image counts
  between the sweep's smallest and largest Dp; the K best, spread over the current interval (`spacing`: a
  round's proposals sit at least 1/(2K) of the interval's width apart, in log Dp).
- `pair_trials` / `affordable`: a proposal is the plain fine-tune and the distillation at its Dp for
  every seed of the sweep, with the pretrainings they need (a slice key without teachers: the
  fine-tune alone); finished ones are reused (ids are content hashes), and only the proposals the
  budget affords, in trials or FLOPs (adaptive/budget.py), are kept.

Replicates: a candidate within REPEAT_GAP of a Dp the slice has measured becomes a replicate there:
the pair again at that Dp with new seeds (the k-th replicate runs the sweep's seeds shifted by
k x (max seed + 1)), so a new initialisation and a new subset of the same size -- independent noise,
in the simulator and in training. Without them a noisy study uses up the distinct Dp values of the
band and stops with budget left (BENCHMARKS.md, "Replicates").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from raysweep.adaptive import proposals
from raysweep.laws import boundary as bnd
from raysweep.laws import study as fit
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS, paper_form
from raysweep.laws.slices import Slice
from raysweep.sweep import plan
from raysweep.sweep.spec import Sweep

REPEAT_GAP = 0.002   # decades of Dp (0.5 %): closer to a measured Dp is a replicate there
CANDIDATES = 2000    # log-spaced over the Dp range: 0.0007 decades apart over 1.3 decades, so a
                     # +-10 % interval holds ~120
MAX_GAP = 0.1        # decades: the spacing while a slice has no interval yet
CROSSING_SHARE = 0.5  # a measured crossing is chased while at least this share of draws cross
MIN_BRACKET = 0.1     # decades: a narrower bracket around it gets replicates only, no midpoint
MEASURED = "measured crossing uncertain here"   # the reason of measured_rule's proposals


@dataclasses.dataclass(frozen=True)
class Situation:
    """What a chooser sees at the start of a round."""
    sweep: Sweep
    fits: dict                        # downstream -> {"error": Fit | why, "distilled_error": ...}
    targets: list[Slice]              # boundary slices still to pin down
    measured: dict[tuple, list[int]]  # slice key -> Dp (images) of each distilled result, sorted
    dp_range: tuple[int, int]         # the sweep's smallest and largest Dp, images
    batch: int                        # pairs to propose
    rows: list[dict]                  # the ok results the fits used
    done: frozenset[str] = frozenset()  # ids of every trial that needs no run (results.finished_ids)
    min_flops: float = 0.0            # the design rule picks on until its picks cost this much
    left: float = math.inf            # what is left of the budget, in its unit ...
    cost: Callable[[list], float] = len   # ... and what trials cost in it (Budget.cost)



# ---- where the boundary stands -------------------------------------------------------------

def fit_boundary(rows: list[dict], bootstrap: int, seed: int = 0, forms: dict | None = None
                 ) -> tuple[dict, list[Slice]]:
    """(fits per downstream set, boundary slices) from ok rows (`bnd.ok_rows`: in trial-id order,
    so the intervals, and every later choice, do not depend on the order results arrived in).
    BLAS is held to one thread: the fit's matrices are tiny, and threads spin-waiting for a core
    busy with Ray workers made the bootstrap many times slower (BENCHMARKS.md, "Bootstrap refits,
    refined")."""
    with threadpool_limits(1, "blas"):
        fits = {ds: {name: _fit(rows, ds, name, bootstrap, seed, (forms or {}).get(name))
                     for name in BOUNDARY_LAWS}
                for ds in sorted({r["downstream"] for r in rows if r["downstream"] is not None})}
        return fits, bnd.boundaries(rows, fits)


def _fit(rows: list[dict], ds: str, name: str, bootstrap: int, seed: int, form=None):
    """Law NAME's FORM (the selected one; the paper's by default) on downstream set DS's rows."""
    spec = LAWS[name]
    mine = [r for r in rows if r["downstream"] == ds and r["stage"] == spec.stage]
    return fit.fit_rows(mine, spec.target, form or paper_form(name), bootstrap, seed,
                        extrapolate=False, judge_floor=False)[1]


def selected_forms(offered: dict, rows: list[dict], seed: int = 0) -> dict:
    """Law -> the Form the comparison selects on ROWS (laws/candidates.py), for the boundary laws
    a sweep offers candidates for; fitted without a bootstrap, judged on their checks."""
    forms = fit.candidate_forms(offered)
    out = {}
    for name in BOUNDARY_LAWS:
        if len(forms[name]) < 2:
            continue
        spec = LAWS[name]
        mine = [r for r in rows if r["stage"] == spec.stage]
        entry, _ = fit.fit_law_forms(mine, name, forms[name], 0, seed)
        out[name] = forms[name][entry.selected]
    return out


def measured_dps(rows: list[dict]) -> dict[tuple, list[int]]:
    """Slice key -> the Dp of every distilled result (a Dp measured with several seeds repeats)."""
    found: dict[tuple, list] = {}
    for r in rows:
        if r["stage"] == "distill":
            found.setdefault(bnd.slice_key(r), []).append(r["dp"])
    return {k: sorted(v) for k, v in found.items()}


def chased(s: Slice) -> bool:
    """The slice's laws cross inside the measured Dp range and its measurements do not say
    otherwise (contradicted): D**p is what the rounds pin down."""
    return s.status == bnd.STATUS["ok"] and not contradicted(s)


def contradicted(s: Slice) -> bool:
    """The seeds give draws of the measured differences, and more than 1 - CROSSING_SHARE of
    them do not cross: a crossing of the laws there is the form's, not the data's (eq. 1 and
    eq. 4 give F one shape in every slice), and measuring at it pins down nothing the slice
    shows: the design rule spent much of a budget on such a crossing, gone a round later
    (BENCHMARKS.md, "Adaptive sampling in compute")."""
    share = s.model_free_no_cross_fraction
    return share is not None and share > 1.0 - CROSSING_SHARE


def chased_measured(s: Slice) -> bool:
    """The laws do not cross in range, the measured differences do, in at least CROSSING_SHARE
    of their seed draws: the model-free crossing is what the rounds pin down."""
    return not chased(s) and s.model_free_cross is not None and not contradicted(s)


def pursued(s: Slice) -> bool:
    return chased(s) or chased_measured(s)


def rel_width(s: Slice) -> float:
    """(hi - lo) / D**p of the 95 % interval; infinite while it is open (more than 2.5 % of the
    members do not cross: Slice.cross_interval) or there is no crossing."""
    ci = s.cross_interval()
    if ci is None or s.d_cross is None or ci[0] <= 0:
        return math.inf
    return (ci[1] - ci[0]) / s.d_cross


def width(s: Slice) -> float:
    """The relative width a pursued slice is judged by: its laws' D**p (rel_width), or, when
    chased on the measurements, the model-free crossing's, infinite while more than 2.5 % of the
    seed draws do not cross."""
    if not chased_measured(s):
        return rel_width(s)
    ci = s.measured_interval()
    if ci is None:
        return math.inf
    return (ci[1] - ci[0]) / s.model_free_cross


# ---- where to measure ----------------------------------------------------------------------

def crossing_rule(sit: Situation) -> list[proposals.Candidate]:
    """`--rule crossing`: the proposals module's rule on every chased slice, the best K spread
    out."""
    dps = proposals.candidate_dps(*sit.dp_range, CANDIDATES)
    found = []
    for s in sit.targets:
        f = advantage_samples(sit.fits[s.downstream], s, dps)
        cost = pair_cost(sit.sweep, dps, s.df)
        done = sit.measured.get(bnd.slice_key(s), [])
        found += replicates(proposals.score_slice(bnd.slice_key(s), f, dps, cost), done,
                            len(sit.sweep.seeds))
    return proposals.pick(found, sit.batch, spacing(sit.targets, sit.batch))


def measured_rule(targets: list[Slice], measured: dict[tuple, list[int]], seeds: int,
                  batch: int) -> list[proposals.Candidate]:
    """Up to BATCH pairs for the slices chased on their measurements (chased_measured): first
    the geometric midpoint of each slice's bracket (the measured Dp on either side of its
    model-free crossing) while the bracket is wider than MIN_BRACKET decades, then a replicate
    with new seeds at each end of it; the widest slices first. MEASURED: slice key -> the Dp of
    each distilled result (measured_dps); SEEDS: seeds per replicate."""
    mids, ends = [], []
    for s in sorted(targets, key=width, reverse=True):
        key, done = bnd.slice_key(s), measured.get(bnd.slice_key(s), [])
        dps, cross = np.unique(done), s.model_free_cross
        below, above = dps[dps < cross], dps[dps >= cross]
        if not below.size or not above.size:  # the rows moved since the fit; nothing to aim at
            continue
        lo, hi = int(below.max()), int(above.min())
        score = min(width(s), 1e9)   # the slice's width: what a pair here is for
        at = [proposals.Candidate(key, dp, score, math.nan, MEASURED,
                                  replicate=done.count(dp) // seeds)
              for dp in (round(math.sqrt(lo * hi)), lo, hi)]
        if math.log10(hi / lo) > MIN_BRACKET and at[0].dp not in (lo, hi):
            mids.append(at[0])
        ends += at[1:]
    return (mids + ends)[:batch]


def replicates(found: list[proposals.Candidate], done: list[int], seeds: int
               ) -> list[proposals.Candidate]:
    """Candidates within REPEAT_GAP of a measured Dp moved onto it as its next replicate (the best
    scoring one per Dp); the others as they are."""
    if not done:
        return found
    measured = np.unique(done)
    out: dict[tuple, proposals.Candidate] = {}
    for c in sorted(found, key=lambda c: -c.score):
        gap = np.abs(np.log10(measured / c.dp))
        if gap.min() < REPEAT_GAP:
            dp = int(measured[gap.argmin()])
            c = dataclasses.replace(c, dp=dp, replicate=done.count(dp) // seeds)
        out.setdefault((c.dp, c.replicate), c)
    return list(out.values())


def spacing(targets: list[Slice], batch: int) -> float:
    """Decades between one round's proposals: 1/(2K) of the narrowest interval's width (an
    open one is infinitely wide)."""
    widths = [math.log10(ci[1] / ci[0]) if ci[0] > 0 else math.inf for s in targets
              if (ci := s.cross_interval())]
    return min(MAX_GAP, max(REPEAT_GAP, min(widths, default=MAX_GAP) / (2 * batch)))


def advantage_samples(laws: dict, s: Slice, dps: np.ndarray) -> np.ndarray:
    """(members, Dp values): F of each bootstrap pair (plain member i, distilled member i)."""
    pairs = zip(laws["error"].ensemble, laws["distilled_error"].ensemble)
    with np.errstate(over="ignore", invalid="ignore"):  # wild members: NaN, counted for nothing
        return np.array([bnd.advantage(p, d, s.fixed_inputs(), dps) for p, d in pairs])


def pair_cost(sweep: Sweep, dps: np.ndarray, df: int) -> np.ndarray:
    """Images a pair pushes through a model at each of DPS: the student's pretraining plus two
    fine-tunings on DF images (plan.images_seen: epochs or steps, as the sweep says)."""
    train = sweep.train
    pre = np.array([plan.images_seen(train["pretrain"], d) for d in dps.astype(float)])
    return pre + 2 * plan.images_seen(train["finetune"], df)


def dp_range(sweep: Sweep) -> tuple[int, int]:
    planner = plan.Planner(sweep)
    dps = [planner.dp_images(a) for a in sweep.dp]
    return min(dps), max(dps)


# ---- what to run ---------------------------------------------------------------------------

def pair_trials(sweep: Sweep, picked: list[proposals.Candidate]) -> list[plan.Trial]:
    """Every trial the proposals PICKED stand for (pair_ids), prerequisites first."""
    planner = plan.Planner(sweep)
    for c in picked:
        pair_ids(planner, c)
    return list(planner.trials.values())


def pair_ids(planner: plan.Planner, c: proposals.Candidate) -> list[str]:
    """The trials proposal C stands for, planned on PLANNER (which adds their prerequisites): the
    plain fine-tune and, when the slice has teachers, the distillation at C's Dp, for every seed of
    C's replicate. A slice key with no teachers is a plain fine-tune alone."""
    ds, heads, teachers, df = c.slice_key
    down = next(d for d in planner.sweep.downstream if d.name == ds)
    ids = []
    for seed in replicate_seeds(planner.sweep, c.replicate):
        ids.append(planner.finetune(heads, c.dp, down, df, seed))
        if teachers:
            ids.append(planner.distill(heads, teachers, c.dp, down, df, seed))
    return ids


def replicate_seeds(sweep: Sweep, k: int) -> list[int]:
    """The seeds of the k-th replicate of a pair: the sweep's, shifted past every seed used."""
    return [seed + k * (max(sweep.seeds) + 1) for seed in sweep.seeds]


def affordable(sweep: Sweep, picked: list, done: set[str], left: float,
               cost: Callable[[list], float] = len) -> tuple[list, list]:
    """(proposals, trials to run): the best proposals, in order, whose new trials together cost
    at most LEFT (COST: trials -> the budget's unit). A proposal that adds no trial (all of its
    ran already, e.g. one that failed) is dropped: it would make a round that runs nothing."""
    planner = plan.Planner(sweep)
    kept: list = []
    new: set[str] = set()
    for c in picked:
        before = set(planner.trials)
        pair_ids(planner, c)
        adds = [t for i, t in planner.trials.items() if i not in before and i not in done]
        if not adds:
            continue
        if cost([planner.trials[i] for i in new] + adds) > left:
            break
        kept.append(c)
        new |= {t.trial_id for t in adds}
    return kept, [t for i, t in planner.trials.items() if i in new]
