"""The design rule: the runs that would shrink the boundary's intervals most per FLOP they cost.

A sequential, locally optimal design (Chernoff 1953; Box & Lucas 1959) for the D**p of every
chased slice. At the current fit the delta method gives each slice's

    Var(log D**p) ~ g_p^T (J_p^T J_p)^-1 g_p + g_d^T (J_d^T J_d)^-1 g_d

J: d log(law) / d theta at every row the law was fitted on, theta the selected form's own fit
coordinates (laws/form.py: log E, log coef_k, exponent_k for the paper's); g: d log D**p / d theta,
by the implicit function theorem at the root of F = E_plain - E_distilled. An option adds rows to the two laws -- every plain fine-tune in it one
row of the error law, every distillation one of the distilled law -- so what it would take off the
summed variance of the chased slices is a rank-k update (Woodbury), exact for every option. Its
cost is the FLOPs (plan.flops) of the trials it adds that have not run and are not picked yet:
pretrainings that exist are reused for free, and one picked this round is paid for once.

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

Why options stay inside the intervals: ranked per FLOP over the sweep's whole range, the rule
spent most of its budget at the smallest Dp, where pretraining is cheapest and the linearised
drops looked as large as elsewhere, and the bootstrap intervals did not narrow; the first-order
model overrates far-away rows on laws whose E, coefficient and exponent trade off. Inside the
intervals it only decides shape and amount, and the bootstrap agrees (BENCHMARKS.md, "Adaptive
sampling in compute").

Left out: the ensemble (the rule is first-order around the point fit, so while the fit is poor its
ranking is as poor; the bootstrap still decides when to stop; averaging over bootstrap fits was
measured and did not help, BENCHMARKS.md), and Df values the sweep does not list (each would be a
new slice of the report). How it compares with a denser grid of the same compute: BENCHMARKS.md,
"Adaptive sampling in compute".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from raysweep.adaptive import proposals
from raysweep.adaptive.choice import REPEAT_GAP, Situation, advantage_samples, pair_ids
from raysweep.laws import boundary as bnd
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS
from raysweep.laws.law import Fit
from raysweep.sweep import plan

CANDIDATES = 40   # log-spaced Dp values over the sweep's range (a slice with no interval yet)
BAND_POINTS = 9   # ... over a chased slice's 95 % interval of D**p
SHAPES = ("pair", "fine-tune", "Df row", "row")
REASON = "largest expected drop of the D**p intervals per FLOP"
LAW_OF_STAGE = {LAWS[name].stage: name for name in BOUNDARY_LAWS}   # finetune / distill -> law


def log_jacobian(f: Fit, xs: list[dict]) -> np.ndarray:
    """(rows, parameters): d log(law) / d theta at each row, theta the form's own fit
    coordinates (log of a floor or coefficient, an exponent as itself; laws/form.py): for the
    paper's form (log E, log coef_1..k, exponent_1..k), and no log E where it has no floor."""
    X = {k: np.array([x[k] for x in xs], dtype=float) for k in f.form.inputs}
    return f.form.log_jacobian(X, f.law.values)


def cross_gradient(fits: dict, fixed: dict, dp_range=(1e3, 1e8)
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """d log D**p / d theta of the plain and of the distilled law, for the slice whose other
    inputs are FIXED; None where the laws do not cross in DP_RANGE (images)."""
    plain, dist = fits["error"], fits["distilled_error"]
    root = bnd.d_cross(plain.law, dist.law, fixed, dp_range)
    if root is None:
        return None
    h = 1e-4
    slope = (bnd.advantage(plain.law, dist.law, fixed, root * math.exp(h))
             - bnd.advantage(plain.law, dist.law, fixed, root * math.exp(-h))) / (2 * h)
    at = fixed | {"dp": root}
    dy = [f.law.predict({k: at[k] for k in f.form.inputs}) * log_jacobian(f, [at])[0]
          for f in (plain, dist)]
    return -dy[0] / slope, dy[1] / slope


class _Laws:
    """One downstream set: its fits, the inverse information of each law, the chased slices'
    gradients."""

    def __init__(self, fits: dict, rows: list[dict], targets: list):
        self.fits = fits
        self.inv = {}
        for name in BOUNDARY_LAWS:
            stage, target = LAWS[name].stage, LAWS[name].target
            xs = [r for r in rows if r["stage"] == stage and (r[target] or 0) > 0
                  and all(r.get(k) is not None for k in fits[name].form.inputs)]
            J = log_jacobian(fits[name], xs)
            self.inv[name] = np.linalg.pinv(J.T @ J)
        found = [cross_gradient(fits, s.fixed_inputs(), s.dp_range) for s in targets]
        self.grads = {name: np.array([g[i] for g in found if g is not None])
                      for i, name in enumerate(BOUNDARY_LAWS)}

    def jacobians(self, xs: dict[str, list[dict]]) -> dict[str, np.ndarray]:
        """Law -> the rows of J at the law inputs XS[law]."""
        return {name: log_jacobian(self.fits[name], rows) for name, rows in xs.items() if rows}

    def _update(self, name: str, J: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A J^T, (I + J A J^T)^-1 J A) for new rows J of law NAME: A - (A J^T)(that) is the
        inverse information with them."""
        AJ = self.inv[name] @ J.T
        return AJ, np.linalg.solve(np.eye(len(J)) + J @ AJ, AJ.T)

    def drop(self, js: dict[str, np.ndarray]) -> float:
        """What adding the rows JS (law -> rows of J) takes off the summed variance."""
        total = 0.0
        for name, J in js.items():
            G = self.grads[name]
            if len(J) and G.size:
                AJ, S = self._update(name, J)
                total += float(np.einsum("gp,gp->", G @ AJ, (S @ G.T).T))
        return total

    def add(self, js: dict[str, np.ndarray]) -> None:
        for name, J in js.items():
            if len(J):
                AJ, S = self._update(name, J)
                self.inv[name] = self.inv[name] - AJ @ S


@dataclasses.dataclass
class _Option:
    shape: str
    downstream: str
    dp: int
    members: list[proposals.Candidate]      # its pairs and fine-tunes, as the loop plans them
    trials: list[plan.Trial]                # everything they need, prerequisites included


def design_rule(sit: Situation, per: str = "FLOP", shapes=SHAPES, band: bool = True
                ) -> list[proposals.Candidate]:
    """SIT.BATCH options, and more until they cost SIT.MIN_FLOPS, greedily, by expected drop of
    the chased slices' Var(log D**p) per FLOP, each within what is left of the budget (SIT.LEFT);
    returned as their members (pairs and fine-tunes), each scored by its option's drop per FLOP.
    The arguments are for benchmarks (BENCHMARKS.md): PER "trial" ranks per trial added, SHAPES
    limits the options, BAND False lets options sit anywhere in the sweep's Dp range."""
    laws = {ds: _Laws(sit.fits[ds], [r for r in sit.rows if r["downstream"] == ds],
                      [s for s in sit.targets if s.downstream == ds])
            for ds in {s.downstream for s in sit.targets}}
    taken = set(sit.done) | {r["trial_id"] for r in sit.rows}
    dps = _candidate_dps(sit, band)
    p_win = _winning_shares(sit, dps)
    options = [o for o in _options(sit, sorted(laws), dps, taken) if o.shape in shapes]
    jac = _trial_jacobians(laws, {t.trial_id: t for o in options for t in o.trials})
    picked: list[proposals.Candidate] = []
    left = sit.left
    picks, flops = 0, 0.0
    while picks < sit.batch or flops < sit.min_flops:
        best = None
        for o in options:
            new = [t for t in o.trials if t.trial_id not in taken]
            price = sum(t.flops for t in new)
            cost = price if per == "FLOP" else len(new)
            if not cost or sit.cost(new) > left:
                continue
            score = laws[o.downstream].drop(_stack(jac, new)) / cost
            if best is None or score > best[0]:
                best = (score, o, new, price)
        if best is None or not best[0] > 0:
            break
        score, o, new, price = best
        laws[o.downstream].add(_stack(jac, new))
        taken |= {t.trial_id for t in new}
        picks, flops, left = picks + 1, flops + price, left - sit.cost(new)
        picked += [dataclasses.replace(c, score=float(score), shape=o.shape,
                                       p_positive=p_win.get((c.slice_key, c.dp), math.nan))
                   for c in o.members]
    return picked


def _trial_jacobians(laws: dict, trials: dict[str, plan.Trial]) -> dict[str, tuple]:
    """Trial id -> (its law, its row of J) for every fine-tune and distillation of TRIALS on a
    downstream set in LAWS: computed once a round, in one call per law."""
    by_law: dict[tuple, list[plan.Trial]] = {}
    for t in trials.values():
        ds = (t.config.get("downstream") or {}).get("name")
        if t.stage in LAW_OF_STAGE and ds in laws:
            by_law.setdefault((ds, LAW_OF_STAGE[t.stage]), []).append(t)
    out = {}
    for (ds, name), ts in by_law.items():
        J = laws[ds].jacobians({name: _rows(ts)[name]})[name]
        out |= {t.trial_id: (name, j) for t, j in zip(ts, J)}
    return out


def _stack(jac: dict[str, tuple], trials: list[plan.Trial]) -> dict[str, np.ndarray]:
    """Law -> the rows of J that TRIALS add to it."""
    rows: dict[str, list] = {name: [] for name in BOUNDARY_LAWS}
    for t in trials:
        if t.trial_id in jac:
            name, j = jac[t.trial_id]
            rows[name].append(j)
    return {name: np.array(js) for name, js in rows.items() if js}


def _rows(trials: list[plan.Trial]) -> dict[str, list[dict]]:
    """Law -> the rows TRIALS would add to it (their law inputs)."""
    out: dict[str, list[dict]] = {name: [] for name in BOUNDARY_LAWS}
    for t in trials:
        if t.stage in LAW_OF_STAGE:
            c = t.config
            out[LAW_OF_STAGE[t.stage]].append({"dp": c["dp"], "params": t.params, "df": c["df"],
                                               "teacher_params": t.teacher_params})
    return out


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


def _options(sit: Situation, downstreams: list[str], dps: list[int], taken: set[str]
             ) -> list[_Option]:
    """Every option of every shape at every Dp of DPS, for the downstream sets DOWNSTREAMS."""
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
                        units[teachers, heads, df] = _unit(planner, key, dp, taken)
            out += [_Option("pair" if k[0] else "fine-tune", ds, dp, [c], trials)
                    for k, (c, trials) in units.items()]
            for df in dfs:
                out.append(_merge("Df row", ds, dp, [u for k, u in units.items() if k[2] == df]))
            out.append(_merge("row", ds, dp, list(units.values())))
    return out


def _unit(planner: plan.Planner, key: tuple, dp: int, taken: set[str]
          ) -> tuple[proposals.Candidate, list[plan.Trial]]:
    """The pair (or, with no teachers, the fine-tune) of slice KEY at DP, at its first replicate
    not yet run, and every trial it needs."""
    c = proposals.Candidate(key, dp, 0.0, math.nan, REASON)
    while set(ids := pair_ids(planner, c)) <= taken:
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
