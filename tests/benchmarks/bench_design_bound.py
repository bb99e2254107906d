"""Benchmark: the fewest trials ANY placement of runs could need to pin D**p, against refining the
grid uniformly -- how far below uniform refinement an adaptive sampler can get at all.

    .venv/bin/python tests/benchmarks/bench_design_bound.py [--study slice|grid] [--seeds 20]
        [--noise 0.005] [--tol R] [--kappa K] [--calibrate N]

Same studies, truths, start grids and stopping rule as bench_adaptive.py. Instead of running
samplers it uses the asymptotic (delta-method) variance of log D**p, which the bootstrap interval
estimates:

    Var(log D**p) = kappa * sigma^2 * (g_p^T (J_p^T J_p)^-1 g_p + g_d^T (J_d^T J_d)^-1 g_d)

J: the Jacobian of log(law) in the fit's own parameters (log E, log coef_k, exponent_k) at every
row the law is fitted on (plain fine-tunes for the plain law, distillations for the distilled);
g: the gradient of log D**p in those parameters (implicit function theorem at the root of
F = E_plain - E_distilled); sigma: the simulator's log-normal noise; kappa: the fit's variance over
least squares -- pi / 2 in theory (the Huber loss, delta 1e-3 far below sigma, is least absolute
deviations), but the percentile bootstrap on few rows per law runs narrower: kappa = pi / 2
reproduces bench_adaptive's measured uniform refinement on the whole study, kappa = 1 on one slice
(--calibrate N replays uniform refinement's final design N times with new noise and prints the
bootstrap's widest interval beside the predicted one). The laws are the ones fitted to a dense
noise-free grid of the study (what the fit can express: with the teacher term dropped, each
student having one teacher set, they still place every D**p within 0.5 % of the truth). The
interval's relative width is 2 sinh(1.96 sd) of log D**p.

Per seed:
  uniform     bench_adaptive's uniform strategy (whole Dp rows at the widest log gaps; 4 rows a
              round on one slice, 1 on the whole study) until every slice's width is <= R: its
              trials, start grid included.
  bound       a lower bound for every sampler: the start grid plus the fewest observations, each
              costing ONE trial (no pretraining paid for; any Dp, any slice, any number of
              repeats), with which some design reaches width <= R in every slice. It is the
              optimal approximate design -- the design weights that minimise the largest
              Var(log D**p), a convex problem solved by SLSQP on its epigraph -- bisected over the
              number of observations.
  bound_paid  the same with each observation costing what it costs in a whole row at one Dp, the
              arrangement with the most observations per trial (pretrainings shared by every
              fine-tune and distillation at that Dp): 4 trials per 2 on one slice, 25 per 21 on
              the whole study. Still a lower bound: a real sampler cannot place every observation
              where the design wants it and share every pretraining.
Reported: median trials of each, and bound / uniform per seed, for all trials and for those after
the start grid. Where bound / uniform > 0.2 no sampler can do with 1/5 of uniform refinement's
trials (to first order in the noise, and with the truth known).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile

import bench_adaptive as B
import numpy as np
from scipy import optimize

from raysweep.adaptive import choice
from raysweep.adaptive import loop as adaptive
from raysweep.adaptive.information import cross_gradient, log_jacobian
from raysweep.laws import boundary as bnd
from raysweep.laws import study as fit
from raysweep.store import results
from raysweep.sweep import plan, spec

KAPPA = math.pi / 2   # variance of least absolute deviations over least squares, Gaussian noise
Z = 1.96              # 95 %
DENSE = 12            # Dp values of the noise-free grid the true laws are fitted on
BOUND_DPS = 12        # log-spaced candidate Dp values of the optimal design (0.11 decades apart
                      # on the whole study; 24 moved seed 0's bound by < 1 %)
LAWS = choice.BOUNDARY_LAWS   # ("error", "distilled_error")
STAGE = {"finetune": "error", "distill": "distilled_error"}


def inputs_of(t: plan.Trial) -> dict[str, float]:
    """A planned trial's law inputs, and its student's heads."""
    c = t.config
    return {"dp": c["dp"], "params": t.params, "df": c["df"], "teacher_params": t.teacher_params,
            "heads": c["model"]["heads"]}


def true_fits(sweep: spec.Sweep) -> dict[str, fit.Fit]:
    """The laws the fit converges to on this study: fitted to a dense grid at noise 1e-9."""
    dps = [float(a) for a in np.round(np.geomspace(min(sweep.dp), max(sweep.dp), DENSE), 5)]
    raw = dict(sweep.raw) | {"name": "dense", "dp": dps, "seeds": [0],
                             "simulate": dict(sweep.simulate) | {"noise": 1e-9}}
    with tempfile.TemporaryDirectory() as out:
        adaptive.inline_runner(out)(plan.plan(spec.parse(raw)))
        rows = bnd.ok_rows(results.read(out))
    return {name: choice._fit(rows, sweep.downstream[0].name, name, 0, 0) for name in LAWS}


class Study:
    """One seed of a study: its laws, slices and the gradients of each slice's log D**p."""

    def __init__(self, study: str, seed: int, noise: float, kappa: float = KAPPA):
        self.sweep = B.SWEEPS[study](seed, noise)
        self.noise2 = kappa * noise ** 2
        self.fits = true_fits(self.sweep)
        self.slices = B.slice_inputs(self.sweep)
        self.grads = [cross_gradient(self.fits, x) for x in self.slices.values()]

    def rows(self, trials) -> dict[str, list[dict]]:
        out = {name: [] for name in LAWS}
        for t in trials:
            if t.stage in STAGE:
                out[STAGE[t.stage]].append(inputs_of(t))
        return out

    def info(self, trials) -> dict[str, np.ndarray]:
        return {name: log_jacobian(self.fits[name], xs).T @ log_jacobian(self.fits[name], xs)
                / self.noise2 for name, xs in self.rows(trials).items()}

    def variances(self, info: dict[str, np.ndarray]) -> np.ndarray:
        inv = [np.linalg.pinv(info[name]) for name in LAWS]
        return np.array([gp @ inv[0] @ gp + gd @ inv[1] @ gd for gp, gd in self.grads])


def width(var) -> np.ndarray:
    return 2 * np.sinh(Z * np.sqrt(var))


def uniform(st: Study, study: str, tol: float, cap: int) -> list[int]:
    """The Dp values (images) uniform refinement has run when every slice reaches TOL
    (bench_adaptive's uniform strategy: whole rows at the widest log gaps), start grid included."""
    dps = sorted({t.config["dp"] for t in plan.plan(st.sweep)})
    while True:
        trials = plan.plan(st.sweep, dps)
        if width(st.variances(st.info(trials))).max() <= tol or len(trials) >= cap:
            return dps
        dps = sorted(dps + B.gap_midpoints(dps, B.ROWS[study]))


def candidates(st: Study) -> list[tuple[str, dict]]:
    """(law, one row): every plain fine-tune and distillation the sweep has, at BOUND_DPS Dp."""
    return [(STAGE[t.stage], inputs_of(t)) for t in candidate_trials(st)]


def candidate_trials(st: Study) -> list[plan.Trial]:
    dps = np.geomspace(*choice.dp_range(st.sweep), BOUND_DPS)
    return [t for t in plan.plan(st.sweep, [round(d) for d in dps]) if t.stage in STAGE]


def row_flops(st: Study) -> np.ndarray:
    """Per candidate: FLOPs of one observation paid for as in a whole row at its Dp -- its own
    trial, plus the row's pretrainings shared evenly by the row's observations (the cheapest a
    real sampler can get at that Dp)."""
    out = []
    for t in candidate_trials(st):
        row = plan.plan(st.sweep, [t.config["dp"]])
        shared = sum(r.flops for r in row if r.stage == "pretrain")
        out.append(t.flops + shared / sum(r.stage in STAGE for r in row))
    return np.array(out)


def best_design(st: Study, start: dict, cands: list, n: float, cost: np.ndarray | None = None
                ) -> tuple[float, np.ndarray]:
    """(largest Var(log D**p), weights): the design of N observations over CANDS, on top of the
    START information, that minimises the largest variance over the slices. Convex: each variance
    is a matrix-fractional function of the weights, so SLSQP on the epigraph finds the optimum.
    With COST (per candidate), N is a compute budget and weight w_j buys N w_j / COST_j
    observations of candidate j: still linear in w, still convex."""
    law_of = np.array([LAWS.index(name) for name, _ in cands])
    scale = np.ones(len(cands)) if cost is None else 1.0 / np.asarray(cost, dtype=float)
    n_of = [n * scale[law_of == i] for i in range(len(LAWS))]
    J = [log_jacobian(st.fits[name], [x for k, x in cands if k == name]) for name in LAWS]
    m = len(cands)

    def inverses(w):
        return [np.linalg.inv(start[name] + (J[i].T * (n_of[i] * w[law_of == i])) @ J[i]
                              / st.noise2) for i, name in enumerate(LAWS)]

    def slack(z):   # t - Var_s >= 0
        inv = inverses(z[:-1])
        return z[-1] - np.array([gp @ inv[0] @ gp + gd @ inv[1] @ gd for gp, gd in st.grads])

    def slack_jac(z):   # dVar_s / dw_j = -n / noise2 * (row_j . M^-1 g)^2
        inv = inverses(z[:-1])
        out = np.ones((len(st.grads), m + 1))
        for s, grads in enumerate(st.grads):
            for i, g in enumerate(grads):
                out[s, :-1][law_of == i] = n_of[i] * (J[i] @ (inv[i] @ g)) ** 2 / st.noise2
        return out

    res = optimize.minimize(
        lambda z: z[-1], np.append(np.full(m, 1.0 / m), 1.0),
        jac=lambda z: np.append(np.zeros(m), 1.0), method="SLSQP",
        bounds=[(0, 1)] * m + [(0, None)],
        constraints=[{"type": "ineq", "fun": slack, "jac": slack_jac},
                     {"type": "eq", "fun": lambda z: z[:-1].sum() - 1,
                      "jac": lambda z: np.append(np.ones(m), 0.0)}],
        options={"maxiter": 500, "ftol": 1e-12})
    return float(res.x[-1]), res.x[:-1]


def bound(st: Study, tol: float, cost: np.ndarray | None = None
          ) -> tuple[float, list[tuple[float, str, dict]]]:
    """(fewest one-trial observations after the start grid with which some design reaches TOL in
    every slice, that design as (observations, law, row)): the continuous relaxation, a lower
    bound for every sampler. Bisected to half an observation. With COST per candidate: the least
    compute instead (bisected to 2 %), the design as (compute, law, row)."""
    start = st.info(plan.plan(st.sweep))
    target = (math.asinh(tol / 2) / Z) ** 2   # Var(log D**p) at which width(var) == tol
    if st.variances(start).max() <= target:
        return 0.0, []
    cands = candidates(st)
    lo, hi = 0.0, 1.0 if cost is None else 0.05 * sum(t.flops for t in plan.plan(st.sweep))
    while best_design(st, start, cands, hi, cost)[0] > target:
        lo, hi = hi, hi * 2
    while hi - lo > (0.5 if cost is None else 0.02 * hi):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if best_design(st, start, cands, mid, cost)[0] > target else (lo, mid)
    w = best_design(st, start, cands, hi, cost)[1]
    return hi, [(hi * wi, *c) for wi, c in zip(w, cands) if wi > 0.01]


def calibrate(st: Study, dps: list[int], replays: int) -> tuple[float, float]:
    """(predicted, median bootstrap) widest interval of the rows at DPS over REPLAYS noisy runs
    (new seeds: new noise)."""
    pred = float(width(st.variances(st.info(plan.plan(st.sweep, dps)))).max())
    seen = []
    for r in range(replays):
        raw = dict(st.sweep.raw) | {"name": f"replay-{r}", "seeds": [1000 + r]}
        with tempfile.TemporaryDirectory() as out:
            adaptive.inline_runner(out)(plan.plan(spec.parse(raw), dps))
            _, slices = choice.fit_boundary(bnd.ok_rows(results.read(out)), 100)
        seen.append(max(choice.rel_width(s) for s in slices))
    return pred, statistics.median(seen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", choices=sorted(B.SWEEPS), default="slice")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.005)
    p.add_argument("--tol", type=float)
    p.add_argument("--cap", type=int, default=100_000)
    p.add_argument("--kappa", type=float, default=KAPPA,
                   help="variance factor of the fit over least squares (default pi / 2)")
    p.add_argument("--calibrate", type=int, default=0, metavar="N")
    p.add_argument("--cost", choices=("trials", "flops"), default="trials",
                   help="flops: the bound in compute (each observation paid for as in a whole "
                        "row at its Dp), against uniform refinement's compute")
    args = p.parse_args(argv)
    tol = args.tol or B.TOL[args.study]
    rows = []
    if args.cost == "flops":
        return flops_bound(args, tol)
    for seed in range(args.seeds):
        st = Study(args.study, seed, args.noise, args.kappa)
        grid = len(plan.plan(st.sweep))
        dps = uniform(st, args.study, tol, args.cap)
        n, design = bound(st, tol)
        row = plan.plan(st.sweep, dps[:1])   # a whole row: the most observations per trial
        per_obs = len(row) / sum(t.stage in STAGE for t in row)
        line = {"seed": seed, "grid": grid, "uniform": len(plan.plan(st.sweep, dps)),
                "bound": grid + n, "bound_paid": grid + n * per_obs, "bound_design": [
                    {"n": round(k, 1), "law": law, "heads": x["heads"], "df": x["df"], "dp": x["dp"]}
                    for k, law, x in design]}
        if args.calibrate:
            line["width_predicted"], line["width_bootstrap"] = calibrate(st, dps, args.calibrate)
        rows.append(line)
        print(json.dumps(line, default=float), flush=True)
    grid = rows[0]["grid"]
    print(f"\n{args.study}, tol {tol}, noise {args.noise}, kappa {args.kappa:.3g}, {args.seeds} "
          f"seeds: median trials uniform {statistics.median(r['uniform'] for r in rows):g}")
    for k in ("bound", "bound_paid"):
        ratio = [r[k] / r["uniform"] for r in rows]
        added = [(r[k] - grid) / (r["uniform"] - grid) for r in rows if r["uniform"] > grid]
        print(f"{k}: median {statistics.median(r[k] for r in rows):.1f} trials; / uniform per "
              f"seed: median {statistics.median(ratio):.2f} (min {min(ratio):.2f}); after the "
              f"start grid: median {statistics.median(added):.2f} (min {min(added):.2f})")
    return 0


def flops_bound(args, tol: float) -> int:
    """--cost flops: per seed, uniform refinement's compute to reach TOL (start grid included)
    and the least compute of any design, each observation paid for as in a whole row."""
    rows = []
    for seed in range(args.seeds):
        st = Study(args.study, seed, args.noise, args.kappa)
        grid = sum(t.flops for t in plan.plan(st.sweep))
        uni = sum(t.flops for t in plan.plan(st.sweep, uniform(st, args.study, tol, args.cap)))
        c, _ = bound(st, tol, row_flops(st))
        rows.append({"seed": seed, "grid_flops": grid, "uniform_flops": uni,
                     "bound_flops": grid + c})
        print(json.dumps(rows[-1]), flush=True)
    ratio = [r["bound_flops"] / r["uniform_flops"] for r in rows]
    added = [(r["bound_flops"] - r["grid_flops"]) / (r["uniform_flops"] - r["grid_flops"])
             for r in rows if r["uniform_flops"] > r["grid_flops"]]
    print(f"\n{args.study}, tol {tol}, noise {args.noise}, kappa {args.kappa:.3g}, {args.seeds} "
          f"seeds, compute: bound / uniform per seed median {statistics.median(ratio):.2f} "
          f"(min {min(ratio):.2f}); after the start grid: median {statistics.median(added):.2f} "
          f"(min {min(added):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
