"""Benchmark: how far the adaptive runs of bench_random_truths.py sit from the optimal-design floor,
in FLOPs, on the same truths.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_random_floor.py --log FILE [FILE ...]
        [--strategies design] [--budgets 1x]

For every adaptive run a log holds with its final design (bench_compute.design_rows: the law rows
it ended with), at the truth's own laws (bench_design_bound.true_fits: the paper's forms fitted to
a dense noise-free grid of the truth) and to first order in the noise (the delta method,
bench_design_bound's machinery):
  V_s      the Var(log D**p) the run's design gives each judged slice (the single-teacher slices
           whose true D**p lies in the Dp range, as bench_random_truths judges them);
  floor    the least compute of any design that starts from the same 7-value grid and gives
           every judged slice at most its V_s: the optimal approximate design over 12 log-spaced
           Dp values and every fine-tune and distillation the sweep has there, each observation
           paid for as in a whole row at its Dp (its trial plus its share of the row's
           pretrainings; bench_design_bound.row_flops), bisected to 2 %;
  the same for the densest baseline grid (31 Dp values), so the two distances read side by side.
Reported: the run's FLOPs over its floor's (1: no sampler could do with less compute for the same
intervals; the floor assumes the truth known, no pretraining unpaid-for, any number of repeats),
per run and as median / 90th percentile, beside the 31-value grid's. The noise level scales every
variance alike and cancels.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import bench_design_bound as bound
import bench_random_truths as rt
import numpy as np

from raysweep.adaptive import choice
from raysweep.adaptive.information import cross_gradient, log_jacobian
from raysweep.sweep import plan

DENSEST = max(rt.GRIDS)


class Truth(bound.Study):
    """Truth SEED's laws and judged slices, as a bench_design_bound.Study (its info, variances
    and bound), the noise's units throughout; the slices' gradients scaled by 1 / sqrt(V_s) once
    `aim` is given targets, so 'every variance <= 1' is 'every slice at most its V_s'."""

    def __init__(self, seed: int):   # the study is truth SEED's, not one of bench_adaptive's
        self.sweep, _ = rt.truth_sweep(seed)
        self.noise2 = 1.0
        self.fits = bound.true_fits(self.sweep)
        truth, span = rt.compute.truths(self.sweep), choice.dp_range(self.sweep)
        inputs = bound.B.slice_inputs(self.sweep)
        keys = [k for k, d in truth.items() if len(k[2]) == 1 and d and span[0] <= d <= span[1]]
        found = [cross_gradient(self.fits, inputs[k]) for k in keys]
        self.raw = [g for g in found if g is not None]
        self.grads = self.raw

    def info_of(self, rows: dict[str, list[tuple[dict, int]]]) -> dict[str, np.ndarray]:
        """Law -> J^T J of ROWS (law -> [(inputs, how many times)])."""
        out = {}
        for name in bound.LAWS:
            xs, n = zip(*rows[name]) if rows[name] else ((), ())
            J = log_jacobian(self.fits[name], list(xs))
            out[name] = (J.T * np.array(n, dtype=float)) @ J
        return out

    def aim(self, targets: np.ndarray) -> None:
        self.grads = [(gp / math.sqrt(v), gd / math.sqrt(v))
                      for (gp, gd), v in zip(self.raw, targets)]

    def floor(self, targets: np.ndarray) -> float:
        """Least FLOPs (start grid included) of a design giving every judged slice at most
        TARGETS (Var(log D**p), in the noise's units)."""
        self.aim(targets)
        grid = sum(t.flops for t in plan.plan(self.sweep))
        # bound() aims at Var <= (asinh(tol / 2) / Z)^2: 1 at this tol, V_s once aimed
        extra, _ = bound.bound(self, 2 * math.sinh(bound.Z), bound.row_flops(self))
        return grid + extra


def logged_rows(design: list[list]) -> dict[str, list[tuple[dict, int]]]:
    out = {name: [] for name in bound.LAWS}
    for stage, dp, params, df, teacher, n in design:
        out[bound.STAGE[stage]].append(({"dp": dp, "params": params, "df": df,
                                   "teacher_params": teacher}, n))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", nargs="+", required=True)
    p.add_argument("--strategies", nargs="+", default=[rt.compute.COMMAND])
    p.add_argument("--budgets", nargs="+", default=["1x"])
    args = p.parse_args(argv)
    entries = [json.loads(line) for f in args.log for line in Path(f).read_text().splitlines()]
    runs = {(e["seed"], e["budget"], e["strategy"]): e for e in entries
            if e["kind"] == "adaptive" and e.get("design") and e.get("family") == rt.FAMILY
            and e["strategy"] in args.strategies and e["budget"] in args.budgets}
    out = []
    for seed in sorted({k[0] for k in runs}):   # a truth's laws and its grid's floor once
        st = Truth(seed)
        if not st.raw:
            continue
        mine = sorted((k, e) for k, e in runs.items() if k[0] == seed)
        # every variance at the raw gradients, before a floor aims them
        v_runs = [st.variances(st.info_of(logged_rows(e["design"]))) for _, e in mine]
        v_grid = st.variances(st.info(plan.plan(rt.truth_sweep(seed, rt.compute.grid_dps(
            DENSEST))[0])))
        grid_flops = next(g["flops"] for g in entries if g["kind"] == "grid"
                          and g["seed"] == seed and g["dp_values"] == DENSEST)
        grid_floor = st.floor(v_grid)
        for ((_, given, name), e), v_run in zip(mine, v_runs):
            line = {"seed": seed, "budget": given, "strategy": name, "flops": e["flops"],
                    "floor": st.floor(v_run), "grid31_flops": grid_flops,
                    "grid31_floor": grid_floor}
            line |= {"over_floor": line["flops"] / line["floor"],
                     "grid31_over_floor": grid_flops / grid_floor}
            out.append(line)
            print(json.dumps(line), flush=True)
    for given in args.budgets:
        for name in args.strategies:
            mine = [r for r in out if (r["budget"], r["strategy"]) == (given, name)]
            if mine:
                a = [r["over_floor"] for r in mine]
                g = [r["grid31_over_floor"] for r in mine]
                print(f"{name} {given}, {len(mine)} runs: FLOPs over the floor for the same "
                      f"intervals: median {statistics.median(a):.2f}, 90th pct "
                      f"{np.percentile(a, 90):.2f}, max {max(a):.2f}; the 31-value grid: "
                      f"median {statistics.median(g):.2f}, 90th pct {np.percentile(g, 90):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
