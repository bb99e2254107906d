"""Benchmark: the adaptive sampler against the grid a user would run instead, in compute.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_compute.py [--truths 10]
        [--strategies design ...] [--budget 1x] [--bootstrap 200] [--log FILE]

Per truth (a simulated study with a known D**p in every slice): the shipped sweeps/simulate.yaml
(DeiT 2/4/6/8 heads, 3 Df, 3 teacher sets, 7 Dp values: 175 trials) with the distilled law's Dp
exponent drawn from EXPONENTS and its floor E moved so that the 4 <- 2 slice at Df 25,000 crosses
at a D**p drawn log-uniform in CROSSING (the other slices then cross where the laws put them, most
inside the range), noise sigma drawn log-uniform in NOISE. Then, side by side on that truth:
  adaptive  each strategy: `python -m raysweep.adaptive --target boundary` (in-process, simulated
            answers, no Ray) from the 7-Dp grid with --budget (default 1x: the grid's compute
            again) and --tol 0.2;
  grids     the shipped grid itself, and the same sweep with GRIDS log-spaced Dp values over
            the same range, each fitted as the grid command fits it (same bootstrap).
Compute is the planner's model (plan.flops), summed over every trial run, grid included. Width:
the median (hi - lo) / D**p over the single-teacher slices (4h <- 2h, one per Df) whose true D**p
lies inside the Dp range; a slice with no interval counts as infinitely wide. The grids' widths
are fitted log-linearly against their log compute (the shipped grid a fifth point) and read
at each adaptive run's compute: ratio = adaptive width / grid width at equal compute (< 1: the
sampler wins). Coverage: the share of those slices whose interval holds the true D**p.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from raysweep.adaptive import budget, choice, design
from raysweep.adaptive import loop as adaptive
from raysweep.laws import boundary as bnd
from raysweep.laws.law import additive
from raysweep.laws.slices import Slice
from raysweep.store import results
from raysweep.sweep import plan, simulate, spec

SIM = yaml.safe_load((Path(__file__).resolve().parents[2] / "sweeps" / "simulate.yaml").read_text())
CROSSING = (1.2e5, 7e5)   # D**p of the 4 <- 2 slice at Df 25,000; the sweep spans 6.5e4 - 1.3e6
EXPONENTS = (0.45, 0.6)   # the distilled law's Dp exponent (the plain law's: 0.35)
NOISE = (0.005, 0.02)
GRIDS = (11, 15, 23, 31)  # Dp values of the denser grids
TOL = 0.2


def denser_rows(sit: choice.Situation) -> list:
    """The grid refined as it goes: whole Dp rows (every pair and fine-tune the sweep has at that
    Dp) at the log-midpoint of the widest gap between the measured Dp values, one after another
    until they cost SIT.MIN_FLOPS (at least one a round) and within SIT.LEFT."""
    taken = set(sit.done) | {r["trial_id"] for r in sit.rows}
    measured = {r["dp"] for r in sit.rows}
    downstreams = sorted({s.downstream for s in sit.targets})
    picked, flops, left = [], 0.0, sit.left
    while not picked or flops < sit.min_flops:
        logs = np.log(sorted(measured))
        i = int(np.argmax(np.diff(logs)))
        dp = round(math.exp((logs[i] + logs[i + 1]) / 2))
        rows = [o for o in design._options(sit, downstreams, [dp], taken) if o.shape == "row"]
        new = [t for o in rows for t in o.trials if t.trial_id not in taken]
        if not new or sit.cost(new) > left:
            break
        picked += [dataclasses.replace(c, reason="denser row", shape="row")
                   for o in rows for c in o.members]
        taken |= {t.trial_id for t in new}
        measured.add(dp)
        flops, left = flops + sum(t.flops for t in new), left - sit.cost(new)
    return picked


STRATEGIES = {
    "design": design.design_rule,   # the shipped rule: per FLOP, every shape, in the D**p band
    "design-row": functools.partial(design.design_rule, row_test=True),  # each pick weighed
                                    # against the plain denser row (adaptive/denser.py)
    "design-uncal": functools.partial(design.design_rule, calibrate=False),  # the delta
                                    # method's variances as they are (the rule before calibration)
    "design-trials": functools.partial(design.design_rule, per="trial", shapes=("pair",),
                                       band=False),   # the rule before compute: pairs per trial
    "design-anywhere": functools.partial(design.design_rule, band=False),
    "design-rows": functools.partial(design.design_rule, shapes=("row",)),  # rows, in the band
    "crossing": choice.crossing_rule,
    "rows": denser_rows,            # the grid made denser round by round, no law read
}
COMMAND = "design"   # the strategy `python -m raysweep.adaptive` runs (its default --rule)


def truth_sweep(seed: int, dps: list[float] | None = None) -> tuple[spec.Sweep, float]:
    rng = np.random.default_rng(seed)
    cross = math.exp(rng.uniform(*np.log(CROSSING)))
    exponent = rng.uniform(*EXPONENTS)
    noise = math.exp(rng.uniform(*np.log(NOISE)))
    law = SIM["simulate"]["distilled"]
    law = {**law, "terms": {**law["terms"], "dp": {**law["terms"]["dp"], "exponent": exponent}}}
    base = spec.parse(SIM)
    four = next(t for t in plan.plan(base) if t.stage == "distill"   # 4 <- 2, the middle Df
                and t.config["model"]["heads"] == 4 and t.config["df"] == 25_000)
    x = {"params": four.params, "df": four.config["df"], "teacher_params": four.teacher_params,
         "dp": cross}
    plain = SIM["simulate"]["plain"]
    floor = simulate.law_value(plain, x) - (simulate.law_value(law, x) - law["E"])
    raw = {**SIM, "name": f"bench-compute-{seed}",
           "simulate": {"noise": noise, "plain": plain, "distilled": {**law, "E": floor}}}
    if dps is not None:
        raw["dp"] = dps
    return spec.parse(raw), noise


def truths(sweep: spec.Sweep) -> dict[tuple, float]:
    laws = {k: additive(v["E"], {n: (t["coef"], t["exponent"]) for n, t in v["terms"].items()})
            for k, v in sweep.simulate.items() if k in ("plain", "distilled")}
    out = {}
    for t in plan.plan(sweep):
        if t.stage == "distill":
            x = {"params": t.params, "df": t.config["df"], "teacher_params": t.teacher_params}
            key = (t.config["downstream"]["name"], t.config["model"]["heads"],
                   tuple(t.config["teachers"]), t.config["df"])
            out[key] = bnd.d_cross(laws["plain"], laws["distilled"], x, (1e3, 1e8))
    return out


def judge(slices: list, truth: dict, dp_range: tuple[int, int]) -> dict:
    """Median relative width and coverage over the single-teacher slices crossing in range
    (SLICES: Slices, or boundary.json's / adaptive.json's entries)."""
    slices = [s if isinstance(s, Slice) else Slice.from_json(s) for s in slices]
    found = {bnd.slice_key(s): s for s in slices}
    keys = [k for k, d in truth.items() if len(k[2]) == 1 and d and dp_range[0] <= d <= dp_range[1]]
    widths, covered = [], 0
    for k in keys:
        s = found.get(k)
        ci = s.cross_interval() if s else None   # as the report reads it: 0 / inf open
        widths.append(choice.rel_width(s) if ci else math.inf)
        covered += bool(ci and ci[0] <= truth[k] <= ci[1])
    crossing = [k for k, d in truth.items() if d and dp_range[0] <= d <= dp_range[1]]
    every = [choice.rel_width(found[k]) if k in found and found[k].cross_interval() else math.inf
             for k in crossing]
    return {"width": statistics.median(widths) if widths else math.nan, "covered": covered,
            "slices": len(keys), "widths": widths, "every_slice": every}


def loop_fit(rows: list[dict], bootstrap: int, sweep: spec.Sweep) -> list[dict]:
    """Boundary slices as the adaptive rounds fit them (choice.fit_boundary)."""
    return choice.fit_boundary(rows, bootstrap)[1]


def grid_dps(n: int) -> list[float]:
    """The shipped Dp fractions for N = their count, else N log-spaced over the same range."""
    lo, hi = min(SIM["dp"]), max(SIM["dp"])
    return SIM["dp"] if n == len(SIM["dp"]) else [float(v) for v in np.geomspace(lo, hi, n)]


def run_grid(seed: int, n: int, bootstrap: int, make=truth_sweep, fit=loop_fit) -> dict:
    """The truth MAKE(seed, dps) gives, measured on an N-value Dp grid, fitted by FIT."""
    sweep, _ = make(seed, grid_dps(n))
    trials = plan.plan(sweep)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        adaptive.inline_runner(out)(trials)
        slices = fit(bnd.ok_rows(results.read(out)), bootstrap, sweep)
        wall = time.perf_counter() - start
    return {"dp_values": n, "trials": len(trials), "flops": sum(t.flops for t in trials),
            "wall_s": round(wall, 1), **judge(slices, truths(sweep), choice.dp_range(sweep))}


def run_adaptive(seed: int, name: str, given: str, bootstrap: int, batch: int,
                 make=truth_sweep, fit=None) -> dict:
    """STRATEGY NAME's rounds on the truth MAKE(seed) gives, judged on their last fit, or, with
    FIT, on FIT of every row at the end (what the command's report writes)."""
    sweep, _ = make(seed)
    grid = sum(t.flops for t in plan.plan(sweep))
    truth, span = truths(sweep), choice.dp_range(sweep)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        doc = adaptive.rounds(sweep, out, adaptive.inline_runner(out), budget.parse(given, grid),
                              batch, TOL, bootstrap, echo=lambda _: None,
                              choose=STRATEGIES[name])
        rows = bnd.ok_rows(results.read(out))
        slices = fit(rows, bootstrap, sweep) if fit else doc["boundary"]
        wall = time.perf_counter() - start
    ran = sum(r.get("flops_run") or 0.0 for r in doc["rounds"] if r["round"] > 0)
    return {"strategy": name, "trials": doc["trials_total"], "flops": grid + ran,   # any budget unit
            "rounds": len(doc["rounds"]) - 1, "stopped": doc["stopped"], "wall_s": round(wall, 1),
            **judge(slices, truth, span), "trajectory": trajectory(doc, truth, span),
            "design": design_rows(rows)}


def design_rows(rows: list[dict]) -> list[list]:
    """The law rows a run ended with, as [stage, dp, params, df, teacher_params, count]: what the
    delta method needs to rate its design against the optimal one (bench_random_floor.py)."""
    count = collections.Counter((r["stage"], r["dp"], r["params"], r["df"], r["teacher_params"])
                                for r in rows if r["stage"] in ("finetune", "distill"))
    return [[*k, n] for k, n in sorted(count.items(), key=lambda kv: str(kv[0]))]


def trajectory(doc: dict, truth: dict, span: tuple[int, int]) -> list[dict]:
    """Per round of DOC: what it ran (shapes, replicates, trials, FLOPs) and the judged width
    after its refit, so a run's width can be read against its compute round by round."""
    out, flops = [], 0.0
    for r in doc["rounds"]:
        flops += r.get("flops_run") or 0.0
        shapes: dict[str, int] = {}
        for c in r["proposals"]:
            shapes[c["shape"]] = shapes.get(c["shape"], 0) + 1
        j = judge(r["boundary"], truth, span)
        out.append({"round": r["round"], "shapes": shapes, "trials": r["trials_run"],
                    "replicates": sum(c["replicate"] > 0 for c in r["proposals"]),
                    "denser": sum(c["reason"] == design.DENSER for c in r["proposals"]),
                    "dps": sorted({c["dp"] for c in r["proposals"]}), "flops": flops,
                    "width": j["width"], "covered": j["covered"]})
    return out


def at_compute(grids: list[dict], flops: float) -> float:
    """The grids' width at FLOPS: log width fitted linearly in log compute."""
    pts = [(math.log(g["flops"]), math.log(g["width"])) for g in grids
           if math.isfinite(g["width"]) and g["width"] > 0]
    if len(pts) < 2:
        return math.nan
    slope, icept = np.polyfit(*zip(*pts), 1)
    return math.exp(icept + slope * math.log(flops))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--truths", type=int, default=10)
    p.add_argument("--first", type=int, default=0, help="seed of the first truth")
    p.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=[COMMAND])
    p.add_argument("--budget", default=budget.DEFAULT)
    p.add_argument("--batch", type=int, default=adaptive.DEFAULTS["batch"])
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--log", help="append every grid and adaptive run as a JSON line here; runs "
                                 "in it are not run again (a cut-off benchmark resumes, and a new "
                                 "strategy reuses the logged grids)")
    args = p.parse_args(argv)
    logged = [json.loads(line) for line in Path(args.log).read_text().splitlines()
              ] if args.log and Path(args.log).is_file() else []

    def keep(entry: dict) -> None:
        logged.append(entry)
        print(json.dumps(entry), flush=True)
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

    seeds = range(args.first, args.first + args.truths)
    for seed in seeds:
        have = {(e["kind"], e.get("dp_values"), e.get("strategy"), e.get("batch"),
                 e.get("budget")) for e in logged if e["seed"] == seed}
        sweep, noise = truth_sweep(seed)
        meta = {"seed": seed, "noise": noise,
                "d_cross": next(d for k, d in truths(sweep).items() if k[1] == 4 and k[3] == 25_000)}
        for n in (len(SIM["dp"]), *GRIDS):
            if ("grid", n, None, None, None) not in have:
                keep({"kind": "grid", **meta, **run_grid(seed, n, args.bootstrap)})
        for name in args.strategies:
            if ("adaptive", None, name, args.batch, args.budget) not in have:
                keep({"kind": "adaptive", **meta, "batch": args.batch, "budget": args.budget,
                      **run_adaptive(seed, name, args.budget, args.bootstrap, args.batch)})
    print(table([e for e in logged if e["seed"] in seeds]))
    return 0


def table(entries: list[dict]) -> str:
    lines = [("| truth | noise | D**p (4h, Df 25k) | strategy | trials | compute (x grid) | width | "
              "grid width at equal compute | ratio | covered | rounds | wall |"),
             "|---" * 12 + "|"]
    found: dict[tuple, list] = {}
    for a in sorted((e for e in entries if e["kind"] == "adaptive"),
                    key=lambda e: (e["seed"], e["strategy"], e["batch"])):
        grids = [e for e in entries if e["kind"] == "grid" and e["seed"] == a["seed"]]
        g7 = next(g["flops"] for g in grids if g["dp_values"] == len(SIM["dp"]))
        a = a | {"grid_width": at_compute(grids, a["flops"])}
        a["ratio"] = a["width"] / a["grid_width"]
        found.setdefault((a["strategy"], a["batch"], a["budget"]), []).append(a)
        lines.append(f"| {a['seed']} | {a['noise']:.3f} | {a['d_cross']:.3g} | "
                     f"{a['strategy']} (batch {a['batch']}, {a['budget']}) | {a['trials']} | "
                     f"{a['flops'] / g7:.2f} | {a['width']:.2f} | {a['grid_width']:.2f} | "
                     f"{a['ratio']:.2f} | {a['covered']}/{a['slices']} | {a['rounds']} | "
                     f"{a['wall_s']:.0f} s |")
    for (name, batch, given), runs in found.items():
        rs = [a["ratio"] for a in runs if math.isfinite(a["ratio"]) and a["ratio"] > 0]
        cov = sum(a["covered"] for a in runs) / max(1, sum(a["slices"] for a in runs))
        if rs:
            lines.append(f"\n{name} (batch {batch}, budget {given}): geometric-mean ratio "
                         f"{math.exp(np.mean(np.log(rs))):.2f} (target <= 1 / 1.3 = 0.77), "
                         f"worst {max(rs):.2f} (target <= 1.1), coverage {cov:.0%} (target "
                         f">= 90 %), over {len(rs)} truths")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
