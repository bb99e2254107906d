"""Coverage of the model-free crossing's 95 % interval: moderated per-Dp spreads against one
pooled spread, on differences drawn around a known curve, many times.

    python tests/benchmarks/bench_model_free.py [--reps 1000]

The true paired differences and the Dp layout copy the default's clearest slice after two
adaptive rounds (4 heads <- 2, Df 10: Dp 8 ... 512, the bracket 45 / 64 added, 2 or 4 seeds a
Dp); the truth is the crossing of the true means (what the interval aims at). Each case draws
the seeds' differences with its own spreads per Dp; each replication computes both intervals
(raysweep.laws.measured.model_free, pool=False / True) from the same draws. Printed per case and
estimator: coverage (the share of replications whose measured means cross and whose interval
holds the truth, among those that cross), the median relative width (hi - lo) / crossing, the
share with width <= 0.5 (issue 14's criterion 6), and how often the means cross at all.
"""

from __future__ import annotations

import argparse

import numpy as np

from raysweep.laws import measured

MEANS = {8: 0.02, 32: 0.045, 45: 0.01, 64: -0.015, 128: -0.02, 512: -0.08}
SEEDS = {8: 2, 32: 4, 45: 2, 64: 4, 128: 4, 512: 2}
CASES = {   # Dp -> the seeds' spread (sd of one paired difference)
    "even 0.01": dict.fromkeys(MEANS, 0.01),
    "even 0.02": dict.fromkeys(MEANS, 0.02),
    "quiet bracket (0.003), loud ends (0.03)":
        {8: 0.03, 32: 0.003, 45: 0.003, 64: 0.003, 128: 0.003, 512: 0.03},
    "loud bracket (0.02), quiet ends (0.003)":
        {8: 0.003, 32: 0.003, 45: 0.02, 64: 0.02, 128: 0.003, 512: 0.003},
    "one loud Dp (512: 0.05), 0.01 elsewhere": dict.fromkeys(MEANS, 0.01) | {512: 0.05},
}


def run(reps: int) -> None:
    truth = measured.model_free_cross(np.array(list(MEANS), float), np.array(list(MEANS.values())))
    print(f"true crossing {truth:.4g} images; {reps} replications a case, 2,000 draws each\n")
    print("| case | estimator | crossings found | coverage | median width | width <= 0.5 |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for case, sd in CASES.items():
        found = {"moderated": [], "pooled": []}
        for rep in range(reps):
            per_dp = {d: list(m + sd[d] * rng.standard_normal(SEEDS[d])) for d, m in MEANS.items()}
            for name, pool in (("moderated", False), ("pooled", True)):
                out = measured.model_free(per_dp, seed=rep, pool=pool)
                if out["model_free_cross"] is not None and out["model_free_cross_ci"]:
                    lo, hi = out["model_free_cross_ci"]
                    found[name].append((lo <= truth <= hi, (hi - lo) / out["model_free_cross"]))
        for name, got in found.items():
            held = np.array([g[0] for g in got])
            w = np.array([g[1] for g in got])
            print(f"| {case} | {name} | {len(got) / reps:.0%} | {held.mean():.1%} | "
                  f"{np.median(w):.2f} | {np.mean(w <= 0.5):.0%} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    run(parser.parse_args().reps)
