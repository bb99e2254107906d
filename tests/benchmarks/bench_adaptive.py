"""Benchmark: trials needed to pin D**p down to +-10 %, adaptive against uniform and random Dp.

    .venv/bin/python tests/benchmarks/bench_adaptive.py [--seeds 20] [--noise 0.005] [--cap 240]
                                                       [--bootstrap 100] [--jobs 1] [--log FILE]

Per seed, one truth: the simulate sweep's plain law, and a distilled law built so that F(Dp) =
E_plain - E_distilled turns from + to - at a D**p drawn log-uniform in TRUTH_RANGE (inside the
grid's 6.5e4 - 1.3e6 images); the truth is then recomputed with boundary.d_cross on the true laws.
Every strategy gets the same one-slice sweep (a 4-head student, one 2-head teacher, Df = 50,000),
the same start grid (5 Dp values: 20 trials), the same batch (4 pairs, 16 trials a round), the same
fits (bootstrap B), the same stopping rule (95 % interval of D**p with (hi - lo) / D**p <= 0.2, the
issue's +-10 %) and the same cap on trials; they differ only in where a round's Dp values go:
  adaptive  adaptive_choice.crossing_rule (what `python -m raysweep.adaptive` runs)
  uniform   log-midpoints of the widest gaps between measured Dp values (doubling the density)
  random    log-uniform over the grid's range
Trials run in-process (adaptive.inline_runner: simulated answers, no Ray). Reported per strategy:
median trials at the stop (a run that hits the cap counts as the cap: a lower bound), the share
that converged within the cap, and the share of converged runs whose interval covers the truth.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from raysweep import adaptive, plan, spec
from raysweep import adaptive_choice as choice
from raysweep import boundary as bnd
from raysweep.laws import Law
from raysweep.proposals import Candidate

SIM = yaml.safe_load((Path(__file__).resolve().parents[2] / "sweeps" / "simulate.yaml").read_text())
PLAIN = SIM["simulate"]["plain"]   # error = 0.05 + 6 Dp^-0.35 + 40 M^-0.3 + 2 Df^-0.4
DISTILLED_EXPONENT = 0.2           # the distilled student leans on its teacher more than on Dp
DISTILLED_SHARE = 0.2              # at D**p its Dp term is 1/5 of the plain one (F falls steeply)
TRUTH_RANGE = (1.2e5, 7e5)         # images; the grid spans 6.5e4 - 1.3e6
START_GRID = [0.05, 0.1, 0.25, 0.5, 1.0]  # of 1.3M fractal images
BATCH, TOL = 4, 0.2


def truth_sweep(seed: int, noise: float) -> tuple[spec.Sweep, float]:
    """(one-slice simulate sweep, its true D**p in images)."""
    d = math.exp(np.random.default_rng(seed).uniform(*np.log(TRUTH_RANGE)))
    plain_term = PLAIN["terms"]["dp"]["coef"] * d ** -PLAIN["terms"]["dp"]["exponent"]
    distilled_term = DISTILLED_SHARE * plain_term   # both equal at d: F(d) = 0
    distilled = {"E": PLAIN["E"] + plain_term - distilled_term,
                 "terms": {**PLAIN["terms"], "dp": {"coef": distilled_term * d ** DISTILLED_EXPONENT,
                                                    "exponent": DISTILLED_EXPONENT}}}
    raw = {**SIM, "name": f"bench-adaptive-{seed}", "model": {**SIM["model"], "heads": [4]},
           "teachers": {4: [[2]]}, "df": [1.0], "dp": START_GRID, "distill": {"stage": "pretrain"},
           "simulate": {"noise": noise, "plain": PLAIN, "distilled": distilled}}
    sweep = spec.parse(raw)
    return sweep, true_cross(sweep)


def true_cross(sweep: spec.Sweep) -> float:
    laws = {k: Law(v["E"], {n: (t["coef"], t["exponent"]) for n, t in v["terms"].items()})
            for k, v in sweep.simulate.items() if k in ("plain", "distilled")}
    fixed = {"params": 1e7, "df": 5e4}  # their terms are the same in both laws: F ignores them
    return bnd.d_cross(laws["plain"], laws["distilled"], fixed, (1e3, 1e8))


def uniform(sit: choice.Situation) -> list[Candidate]:
    key = choice.slice_key(sit.targets[0])
    logs = np.log(sit.measured[key])
    gaps = sorted(zip(-np.diff(logs), logs[:-1]))[: sit.batch]  # widest first, then lowest Dp
    return [Candidate(key, round(math.exp(lo - g / 2)), 0.0, math.nan, "uniform refinement")
            for g, lo in gaps]


def random_dp(sit: choice.Situation) -> list[Candidate]:
    key = choice.slice_key(sit.targets[0])
    rng = np.random.default_rng(len(sit.measured[key]))  # new draws every round, reproducible
    return [Candidate(key, round(math.exp(u)), 0.0, math.nan, "random Dp")
            for u in rng.uniform(*np.log(sit.dp_range), size=sit.batch)]


STRATEGIES = {"adaptive": choice.crossing_rule, "uniform": uniform, "random": random_dp}


def one_run(job: tuple) -> dict:
    seed, name, noise, cap, bootstrap = job
    sweep, truth = truth_sweep(seed, noise)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        budget = cap - len(plan.plan(sweep))  # the start grid is round 0, outside the budget
        doc = adaptive.rounds(sweep, out, adaptive.inline_runner(out), budget, BATCH, TOL,
                              bootstrap, echo=lambda _: None, choose=STRATEGIES[name])
    s = doc["boundary"][0]
    ci = s["d_cross_ci"]
    return {"seed": seed, "strategy": name, "truth": truth, "trials": doc["trials_run"],
            "rounds": len(doc["rounds"]) - 1, "converged": choice.rel_width(s) <= TOL,
            "d_cross": s["d_cross"], "ci": ci, "covers": bool(ci and ci[0] <= truth <= ci[1]),
            "stopped": doc["stopped"], "wall_s": round(time.perf_counter() - start, 1)}


def table(runs: list[dict], cap: int) -> str:
    lines = ["| strategy | median trials | converged within cap | covers truth (converged) |",
             "|---|---|---|---|"]
    medians = {}
    for name in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == name]
        conv = [r for r in mine if r["converged"]]
        medians[name] = statistics.median(r["trials"] if r["converged"] else cap for r in mine)
        lower = ">= " if sum(not r["converged"] for r in mine) * 2 >= len(mine) else ""
        lines.append(f"| {name} | {lower}{medians[name]:g} | {len(conv)}/{len(mine)} | "
                     f"{sum(r['covers'] for r in conv)}/{len(conv)} |")
    ratio = medians["adaptive"] / medians["uniform"]
    return "\n".join(lines + [f"\nadaptive / uniform median trials: {ratio:.2f} (target <= 0.2)"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.005, help="sigma of the log-normal noise")
    p.add_argument("--cap", type=int, default=240, help="most trials per run, start grid included")
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--log", help="append each run as a JSON line here; runs already in it are "
                                 "not run again (a cut-off benchmark resumes)")
    args = p.parse_args(argv)
    runs = [json.loads(line) for line in Path(args.log).read_text().splitlines()
            ] if args.log and Path(args.log).is_file() else []
    done = {(r["seed"], r["strategy"]) for r in runs}
    jobs = [(seed, name, args.noise, args.cap, args.bootstrap)
            for seed in range(args.seeds) for name in STRATEGIES if (seed, name) not in done]
    with multiprocessing.Pool(args.jobs) as pool:
        for run in pool.imap_unordered(one_run, jobs):
            runs.append(run)
            print(json.dumps(run), flush=True)
            if args.log:
                with open(args.log, "a") as f:
                    f.write(json.dumps(run) + "\n")
    print(table(runs, args.cap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
