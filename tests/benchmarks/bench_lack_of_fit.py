"""The lack-of-fit test (raysweep.laws.checks.lack_of_fit) on rows drawn from known laws: how often
it says "misfit" when the law is true (its size; nominal 5 %), and how often when the rows come
from a law the fitted form cannot draw (its power).

    python tests/benchmarks/bench_lack_of_fit.py [--reps 200] [--seeds 2]

The layout copies the default grid's error law: 4 Dp (8 ... 512) x 4 sizes (the default's
parameter counts) x 3 Df (10, 100, 1,000), SEEDS rows a point, each row's log error the truth's
plus N(0, 0.07) (the default's seed sd in log error, BENCHMARKS.md). Each replication fits the
law as raysweep.laws.study does (no bootstrap: the test needs the point fit only) and tests it.
Cases:
- "true, no floor": the rows follow a floorless law and are fitted without a floor;
- "true, with a floor": the rows follow a law with E = 0.15 and are fitted with one;
- "saturating in Dp": the Dp term of the truth stops falling past 128 images (the default's rows
  do: BENCHMARKS.md, issue 14), fitted without a floor;
- "Dp x size interaction": the Dp term's coefficient grows with the size (a larger model gains
  more from pretraining), fitted without a floor.
Printed per case: the share of replications with p < 0.05 and the median misfit / noise.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from raysweep.laws.checks import lack_of_fit
from raysweep.laws.fitting import fit_law
from raysweep.laws.law import additive as Law  # the paper's form from E and terms

DP = np.array([8.0, 32.0, 128.0, 512.0])
PARAMS = np.array([7_322.0, 26_922.0, 58_810.0, 102_986.0])  # the default's 2 ... 8 heads, 10 classes
DF = np.array([10.0, 100.0, 1000.0])
NOISE = 0.07
LAW = Law(0.0, {"dp": (0.8, 0.6), "params": (5.0, 0.3), "df": (0.5, 0.22)})
FLOORED = Law(0.15, {"dp": (0.6, 0.6), "params": (4.0, 0.3), "df": (0.4, 0.22)})


def grid(seeds: int) -> dict[str, np.ndarray]:
    dp, params, df = np.meshgrid(DP, PARAMS, DF, indexing="ij")
    return {k: np.repeat(v.ravel(), seeds) for k, v in
            (("dp", dp), ("params", params), ("df", df))}


def saturating(X):
    return LAW.predict({**X, "dp": np.minimum(X["dp"], 128.0)})


def interaction(X):
    coef, exponent = LAW.terms["dp"]
    scale = (X["params"] / PARAMS[0]) ** 0.25
    return LAW.predict(X) + (scale - 1.0) * coef * X["dp"] ** -exponent


CASES = {"true, no floor": (LAW.predict, False), "true, with a floor": (FLOORED.predict, True),
         "saturating in Dp": (saturating, False), "Dp x size interaction": (interaction, False)}


def run(reps: int, seeds: int) -> None:
    X = grid(seeds)
    print(f"{len(X['dp']) // seeds} grid points x {seeds} seeds, noise sd {NOISE} in log y, "
          f"{reps} replications a case\n")
    print("| case | p < 0.05 | median misfit / noise | CPU s |")
    print("|---|---|---|---|")
    for name, (truth, floor) in CASES.items():
        rng = np.random.default_rng(0)
        start, hits, ratios = time.process_time(), 0, []
        for _ in range(reps):
            y = truth(X) * np.exp(rng.normal(0.0, NOISE, len(X["dp"])))
            law = fit_law(X, y, floor=floor).law
            lof = lack_of_fit(X, y, law)
            hits += lof["misfits"]
            ratios.append(lof["misfit"] / lof["noise"])
        print(f"| {name} | {100 * hits / reps:.1f} % | {np.median(ratios):.2f} | "
              f"{time.process_time() - start:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    run(args.reps, args.seeds)


if __name__ == "__main__":
    main()
