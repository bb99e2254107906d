"""Benchmark: the adaptive sampler against the equal-compute grid on truths drawn at random.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_random_truths.py [--truths 30]
        [--first 0] [--budgets 0.5x 1x 3x 300] [--bootstrap 200] [--log FILE]
        [--check-commands K]

Why another benchmark: bench_compute.py's truths vary two numbers of one law around the shipped
study, and the rule was tuned on them. Here every seed draws a whole study's truth (FAMILY, below):
every coefficient and exponent of the plain law (E, A/alpha on Dp, B/beta on the model's
parameters, C/gamma on Df) and of the distilled law (its own A, alpha > the plain alpha, B, beta, C,
gamma, the teacher term D/eta), noise sigma log-uniform in 0.005-0.02, and the D**p of the
reference slice (4 heads <- 2, Df 25,000) log-uniform in CROSSING, which reaches past the sweep's
Dp range on both sides. The distilled floor follows from the crossing (F = 0 there), and the
distilled Dp coefficient from the slope ratio RATIO drawn at it (< 1: F turns from + to - there);
the other slices cross where these laws put them, in the range or not. A draw whose error leaves
(0, MAX_ERROR) anywhere on the grid, or whose distilled floor is not positive, is drawn again.

Per truth, side by side (bench_compute.py's machinery, in-process, simulated answers, no Ray):
  grids     the sweep (sweeps/simulate.yaml: DeiT 2/4/6/8 heads, 3 Df, 3 teacher sets) with the
            shipped 7 Dp values and with GRIDS log-spaced Dp values over the same range;
  adaptive  `python -m raysweep.adaptive --target boundary --tol 0.2` from the 7-value grid, at
            each --budgets (a multiple of the grid's compute, or trials).
Every run is fitted at the end as the commands' report fits it (laws.study.fit_results with the
same bootstrap: boundary.json). Width: the median (hi - lo) / D**p over the single-teacher slices
whose true D**p lies in the Dp range (no interval: infinite); truths with none are listed, not
ratioed. The grids' log width is fitted linearly in log compute and read at the adaptive run's
compute: ratio = adaptive width / that (< 1: the sampler wins). Reported per budget: the whole
distribution of the ratios (geometric mean, 90th percentile, max, count above 1.2) and coverage of
the true D**p. Each run also logs its rounds (shapes, replicates, Dp, compute, judged width) and
the law rows it ended with (bench_random_floor.py rates that design against the optimal one).

--log FILE keeps every run as a JSON line and never runs one again: a long run is continued by
rerunning the same command. --check-commands K runs the first K truths' 7-value grid and their
adaptive runs through the real commands (subprocesses, local Ray) and prints their widths beside
the inline shortcut's: trial ids are content hashes, the simulator's noise is seeded by them and
the rounds fit their rows in id order, so the runs must hold the same trials and their rows,
refitted in id order, the same widths: exactly, or the relative difference is printed (measured:
the same trials, widths 1e-7 apart, cause not found; BENCHMARKS.md). The width in the command's
own boundary.json is printed too: its final fit reads the rows in the order Ray finished them.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_compute as compute
import numpy as np
import yaml

from raysweep.adaptive import choice
from raysweep.laws import boundary as bnd
from raysweep.laws import study
from raysweep.store import results
from raysweep.sweep import plan, simulate, spec

FAMILY = "random-1"          # logged with every run: a changed family never reuses old runs
GRIDS = (7, 11, 15, 19, 23, 31)   # Dp values of the baseline grids (7: the shipped one)
BUDGETS = ("0.5x", "1x", "3x", "300")
CROSSING = (3e4, 4e6)        # reference slice's D**p, images; the sweep spans 6.5e4 - 1.3e6, so
                             # ~35 % of the log-uniform draws fall outside it
RATIO = (0.15, 0.85)         # distilled / plain d(error)/d(log Dp) at the crossing
NOISE = (0.005, 0.02)
MAX_ERROR = 0.95             # no simulated error (fraction) may reach this on the grid
REFERENCE = (4, 25_000)      # student heads, Df (images) of the slice whose D**p is drawn
WORSE = 1.2                  # a ratio above this is a loss the issue counts


def log_uniform(rng, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def draw_laws(rng) -> tuple[dict, dict, float]:
    """(plain, distilled without its floor, D**p of the reference slice) of one draw."""
    def lu(lo: float, hi: float) -> float:
        return log_uniform(rng, lo, hi)

    alpha, beta, gamma = rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.4), rng.uniform(0.25, 0.55)
    plain = {"E": lu(0.02, 0.12), "terms": {
        "dp": {"coef": lu(2.0, 20.0), "exponent": alpha},
        "params": {"coef": lu(15.0, 100.0), "exponent": beta},
        "df": {"coef": lu(0.7, 5.0), "exponent": gamma}}}
    cross = lu(*CROSSING)
    alpha_d = alpha + rng.uniform(0.05, 0.35)
    # the distilled Dp slope at the crossing is RATIO of the plain one: F falls through 0 there
    slope = rng.uniform(*RATIO) * alpha * plain["terms"]["dp"]["coef"] * cross ** -alpha
    distilled = {"terms": {
        "dp": {"coef": slope / alpha_d * cross ** alpha_d, "exponent": alpha_d},
        "params": {"coef": plain["terms"]["params"]["coef"] * lu(0.7, 1.4),
                   "exponent": beta + rng.uniform(-0.05, 0.05)},
        "df": {"coef": plain["terms"]["df"]["coef"] * lu(0.7, 1.4),
               "exponent": gamma + rng.uniform(-0.05, 0.05)},
        "teacher_params": {"coef": lu(0.5, 5.0), "exponent": rng.uniform(0.15, 0.45)}}}
    return plain, distilled, cross


@functools.cache
def draw(seed: int) -> dict:
    """The simulate mapping of truth SEED (redrawn until it is a valid study), with what was
    drawn."""
    rng = np.random.default_rng([seed, 36])
    base = spec.parse(compute.SIM)
    grid = plan.plan(base)
    ref = next(t for t in grid if t.stage == "distill"
               and (t.config["model"]["heads"], t.config["df"]) == REFERENCE)
    x = {"params": ref.params, "df": ref.config["df"], "teacher_params": ref.teacher_params}
    for _ in range(1000):
        plain, distilled, cross = draw_laws(rng)
        floor = (simulate.law_value(plain, x | {"dp": cross})
                 - simulate.law_value({"E": 0.0, **distilled}, x | {"dp": cross}))
        law = {"E": floor, **distilled}
        noise = log_uniform(rng, *NOISE)
        sim = {"noise": noise, "plain": plain, "distilled": law}
        if floor > 0 and valid(grid, sim):
            return {"simulate": sim, "crossing": cross, "floor_gap": floor - plain["E"]}
    raise RuntimeError(f"truth {seed}: no valid draw in 1000 tries; widen the family's ranges")


def valid(grid: list[plan.Trial], sim: dict) -> bool:
    """Every trial of the 7-value grid answers inside (0, MAX_ERROR) before noise; the laws are
    monotone in every input and the denser grids share its Dp range, so theirs do too."""
    for t in grid:
        x = {"dp": t.config["dp"], "df": t.config.get("df"), "params": t.params,
             "teacher_params": t.teacher_params}
        value = simulate.law_value(sim["distilled" if t.stage == "distill" else "plain"], x)
        if not 0 < value < MAX_ERROR:
            return False
    return True


def raw_sweep(seed: int, dps: list[float] | None = None) -> dict:
    truth = draw(seed)
    raw = {**compute.SIM, "name": f"bench-random-{seed}", "simulate": truth["simulate"]}
    return raw if dps is None else {**raw, "dp": dps}


def truth_sweep(seed: int, dps: list[float] | None = None) -> tuple[spec.Sweep, float]:
    """bench_compute's maker signature: (the sweep of truth SEED on DPS, its noise)."""
    raw = raw_sweep(seed, dps)
    return spec.parse(raw), raw["simulate"]["noise"]


def command_fit(rows: list[dict], bootstrap: int, sweep: spec.Sweep, seed: int = 0) -> list[dict]:
    """Boundary slices as the commands' report writes them (boundary.json), from ROWS in
    trial-id order: the bootstrap draws rows by index, and the order Ray finishes trials in
    would otherwise move the intervals (the same rows shuffled: widths 0.93 to infinite). SEED:
    the bootstrap's (the commands' is 0; bench_width_noise.py varies it)."""
    rows = sorted(rows, key=lambda r: r["trial_id"])
    return study.fit_results(rows, bootstrap, seed=seed, offered=sweep.laws)[1]


# ---- the runs, logged --------------------------------------------------------------------

def meta(seed: int) -> dict:
    truth = draw(seed)
    sweep = spec.parse(raw_sweep(seed))
    span = choice.dp_range(sweep)
    inside = [d for k, d in compute.truths(sweep).items()
              if len(k[2]) == 1 and d and span[0] <= d <= span[1]]
    return {"family": FAMILY, "seed": seed, "noise": truth["simulate"]["noise"],
            "crossing": truth["crossing"], "floor_gap": truth["floor_gap"],
            "slices_in_range": len(inside), "laws": truth["simulate"]}


def run_all(seeds, budgets, strategies, bootstrap: int, batch: int, logged: list[dict],
            keep) -> None:
    for seed in seeds:
        have = {(e["kind"], e.get("dp_values"), e.get("budget"), e.get("strategy"))
                for e in logged
                if e["seed"] == seed and e.get("family") == FAMILY
                and e.get("bootstrap") == bootstrap}
        info = meta(seed) | {"bootstrap": bootstrap}
        for n in GRIDS:
            if ("grid", n, None, None) not in have:
                keep({"kind": "grid", **info, **compute.run_grid(
                    seed, n, bootstrap, make=truth_sweep, fit=command_fit)})
        for given in budgets:
            for name in strategies:
                if ("adaptive", None, given, name) not in have:
                    keep({"kind": "adaptive", **info, "batch": batch, "budget": given,
                          **compute.run_adaptive(seed, name, given, bootstrap, batch,
                                                 make=truth_sweep, fit=command_fit)})


# ---- the report --------------------------------------------------------------------------

def ratios(entries: list[dict]) -> list[dict]:
    """Every adaptive run of ENTRIES with its equal-compute grid width and ratio."""
    out = []
    for a in (e for e in entries if e["kind"] == "adaptive"):
        grids = [e for e in entries if e["kind"] == "grid" and e["seed"] == a["seed"]]
        grid = compute.at_compute(grids, a["flops"]) if a["slices"] else math.nan
        g7 = next((g["flops"] for g in grids if g["dp_values"] == GRIDS[0]), math.nan)
        out.append(a | {"grid_width": grid, "ratio": a["width"] / grid if grid else math.nan,
                        "compute_x": a["flops"] / g7})
    return out


def summary(runs: list[dict]) -> str:
    """Per budget: the distribution of the ratios and the coverage."""
    lines = [("| strategy, budget | truths ratioed | geometric mean | 90th pct | max | above 1.2 | "
              "no interval | coverage | no crossing in range |"), "|---" * 9 + "|"]
    for given in dict.fromkeys((r["strategy"], r["budget"]) for r in runs):
        mine = [r for r in runs if (r["strategy"], r["budget"]) == given]
        judged = [r for r in mine if r["slices"] and math.isfinite(r["grid_width"])]
        rs = np.array([r["ratio"] for r in judged], dtype=float)
        fin = rs[np.isfinite(rs)]
        cov = sum(r["covered"] for r in judged) / max(1, sum(r["slices"] for r in judged))
        gm = math.exp(np.log(fin).mean()) if fin.size else math.nan
        pct = float(np.percentile(rs, 90)) if rs.size else math.nan
        lines.append(f"| {given[0]} {given[1]} | {len(judged)} | {gm:.2f} | {pct:.2f} | {rs.max(initial=0):.2f}"
                     f" | {int((rs > WORSE).sum())} | {int((~np.isfinite(rs)).sum())} | "
                     f"{cov:.0%} | {sum(not r['slices'] for r in mine)} |")
    return "\n".join(lines)


def table(runs: list[dict]) -> str:
    lines = [("| truth | noise | D**p ref | slices in range | strategy, budget | trials | compute (x grid) "
              "| width | grid width at equal compute | ratio | covered | rounds | stopped |"),
             "|---" * 13 + "|"]
    for r in sorted(runs, key=lambda r: (r["seed"], str(r["budget"]), r["strategy"])):
        lines.append(f"| {r['seed']} | {r['noise']:.3f} | {r['crossing']:.3g} | "
                     f"{r['slices_in_range']} | {r['strategy']} {r['budget']} | {r['trials']} | "
                     f"{r['compute_x']:.2f} | {r['width']:.2f} | {r['grid_width']:.2f} | "
                     f"{r['ratio']:.2f} | {r['covered']}/{r['slices']} | {r['rounds']} | "
                     f"{r['stopped'][:40]} |")
    return "\n".join(lines)


# ---- the commands, for --check-commands --------------------------------------------------

def command_widths(seed: int, budgets, bootstrap: int, batch: int) -> list[dict]:
    """Truth SEED's 7-value grid and its adaptive runs through `python -m raysweep.grid` and
    `python -m raysweep.adaptive`, judged on the boundary.json each writes."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_DISABLE_DASHBOARD": "1"}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(raw_sweep(seed)))
        sweep = spec.parse(raw_sweep(seed))
        jobs = [("grid", None, ["raysweep.grid"])] + [
            ("adaptive", given, ["raysweep.adaptive", "--target", "boundary", "--budget", given,
                                 "--tol", str(compute.TOL), "--batch", str(batch)])
            for given in budgets]
        for kind, given, cmd in jobs:
            where = Path(tmp) / f"{kind}-{given}"
            done = subprocess.run([sys.executable, "-m", *cmd, "--sweep", str(path), "--out",
                                   str(where), "--bootstrap", str(bootstrap)], env=env,
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                raise RuntimeError(f"{cmd[0]} on truth {seed} exited {done.returncode}:\n"
                                   f"{done.stderr[-2000:]}")
            truth, span = compute.truths(sweep), choice.dp_range(sweep)
            written = json.loads((where / "boundary.json").read_text())
            rows = bnd.ok_rows(results.read(str(where)))
            refit = command_fit(rows, bootstrap, sweep)
            out.append({"seed": seed, "kind": kind, "budget": given, "trials": len(rows),
                        "written": compute.judge(written, truth, span)["width"],
                        "width": compute.judge(refit, truth, span)["width"]})
    return out


def check_commands(k: int, first: int, budgets, bootstrap: int, batch: int,
                   logged: list[dict]) -> str:
    lines = [("| truth | run | command: trials, width (boundary.json; its rows in id order) | "
             "shortcut: trials, width | same |"), "|---|---|---|---|---|"]
    for seed in range(first, first + k):
        for c in command_widths(seed, budgets, bootstrap, batch):
            s = next(e for e in logged if e["seed"] == seed and e["kind"] == c["kind"]
                     and e.get("family") == FAMILY and e.get("bootstrap") == bootstrap
                     and e.get("strategy") in (None, compute.COMMAND)   # grid; the --rule
                     and (e.get("dp_values") == GRIDS[0] or e.get("budget") == c["budget"]))
            same = s["trials"] == c["trials"] and math.isclose(s["width"], c["width"],
                                                               rel_tol=1e-9)
            off = abs(c["width"] / s["width"] - 1) if math.isfinite(s["width"]) else math.nan
            lines.append(f"| {seed} | {c['kind']} {c['budget'] or ''} | {c['trials']}, "
                         f"{c['written']:.6g}; {c['width']:.6g} | {s['trials']}, "
                         f"{s['width']:.6g} | {'yes' if same else f'NO (relative {off:.1e})'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--truths", type=int, default=30)
    p.add_argument("--first", type=int, default=0, help="seed of the first truth")
    p.add_argument("--budgets", nargs="+", default=list(BUDGETS),
                   help="adaptive budgets: a multiple of the grid's compute (1x) or trials (300)")
    p.add_argument("--strategies", nargs="+", choices=list(compute.STRATEGIES),
                   default=[compute.COMMAND], help="where the adaptive rounds put their runs "
                   f"(bench_compute.STRATEGIES; {compute.COMMAND}: the command's default)")
    p.add_argument("--batch", type=int, default=compute.adaptive.DEFAULTS["batch"])
    p.add_argument("--bootstrap", type=int, default=study.DEFAULT_BOOTSTRAP)
    p.add_argument("--log", help="JSON lines of every run; runs in it are not run again")
    p.add_argument("--check-commands", type=int, default=0, metavar="K",
                   help="also run the first K truths through the real commands and compare")
    args = p.parse_args(argv)
    logged = [json.loads(line) for line in Path(args.log).read_text().splitlines()
              ] if args.log and Path(args.log).is_file() else []

    def keep(entry: dict) -> None:
        logged.append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "laws"}), flush=True)
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

    seeds = range(args.first, args.first + args.truths)
    run_all(seeds, args.budgets, args.strategies, args.bootstrap, args.batch, logged, keep)
    mine = [e for e in logged if e["seed"] in seeds and e.get("family") == FAMILY
            and e.get("bootstrap") == args.bootstrap]
    runs = [r for r in ratios(mine) if r["budget"] in args.budgets
            and r["strategy"] in args.strategies]
    print(table(runs))
    print(summary(runs))
    if args.check_commands:
        print(check_commands(args.check_commands, args.first, args.budgets, args.bootstrap,
                             args.batch, logged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
