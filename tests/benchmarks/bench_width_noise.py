"""Benchmark: how much of a judged D**p width is the bootstrap's own Monte-Carlo noise.

bench_random_truths.py judges every run by one refit with the command's resamples (bootstrap
seed 0). Where an adaptive run loses to the grid by a ratio a handful of resamples could move,
this reruns the run and the grids of the same truth (the same code, so the same rows) and refits
each one's rows at several bootstrap seeds, and once with many more resamples: a loss that holds
at every seed and at the larger count is the rows', not the judge's.

  python bench_width_noise.py --truth 16 --budget 300 [--grids 7 11 15] [--seeds 6] [--many 1000]

Prints one line a run: its compute over the 7-value grid's, the widths at bootstrap seeds
0..SEEDS-1, and the width with MANY resamples. Figures: BENCHMARKS.md, "Adaptive sampling in
compute".
"""

from __future__ import annotations

import argparse
import sys

import bench_compute as compute
import bench_random_truths as rt

from raysweep.adaptive import choice
from raysweep.laws import study
from raysweep.sweep import plan


def widths(rows: list[dict], sweep, bootstrap: int, seeds: int, many: int) -> tuple[list, float]:
    """Judged width of ROWS refitted as the commands do, at bootstrap seeds 0..SEEDS-1, and with
    MANY resamples."""
    truth, span = compute.truths(sweep), choice.dp_range(sweep)

    def width(b: int, seed: int) -> float:
        return compute.judge(rt.command_fit(rows, b, sweep, seed), truth, span)["width"]
    return [width(bootstrap, s) for s in range(seeds)], width(many, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--truth", type=int, required=True, help="bench_random_truths' truth seed")
    p.add_argument("--budget", default="1x")
    p.add_argument("--grids", type=int, nargs="+", default=[7, 11, 15],
                   help="Dp values of the grids to refit beside the run")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--many", type=int, default=1000)
    p.add_argument("--bootstrap", type=int, default=study.DEFAULT_BOOTSTRAP)
    args = p.parse_args(argv)
    kept: list[tuple] = []

    def keep(rows, bootstrap, sweep):
        kept.append((rows, sweep))
        return rt.command_fit(rows, bootstrap, sweep)

    grid = sum(t.flops for t in plan.plan(rt.truth_sweep(args.truth)[0]))
    run = compute.run_adaptive(args.truth, compute.COMMAND, args.budget, args.bootstrap,
                               compute.adaptive.DEFAULTS["batch"], make=rt.truth_sweep, fit=keep)
    runs = [(f"adaptive {args.budget}", run["flops"])]
    for n in args.grids:
        runs.append((f"grid {n}", compute.run_grid(args.truth, n, args.bootstrap,
                                                   make=rt.truth_sweep, fit=keep)["flops"]))
    for (name, flops), (rows, sweep) in zip(runs, kept):
        at, big = widths(rows, sweep, args.bootstrap, args.seeds, args.many)
        print(f"truth {args.truth} {name}: compute {flops / grid:.2f}x; width at seeds "
              f"0-{args.seeds - 1}: {', '.join(f'{w:.3g}' for w in at)}; "
              f"with {args.many}: {big:.3g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
