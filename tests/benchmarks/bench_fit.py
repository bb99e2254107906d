"""How fast and how right `raysweep.laws.fit_law` is, on the Chinchilla reference and on known laws.

Run: .venv/bin/python tests/benchmarks/bench_fit.py [--draws 100]   (about 5-8 minutes, 2 cores)
Prints:
1. the 240-row two-input reference fit from the 4,500-start grid (target <= 2 s), and its numbers
   against the replication (Besiroglu et al. 2024);
2. 1,000 bootstrap refits (target <= 30 s) and their 95 % intervals against the replication's;
3. the full multi-start search it replaces: L-BFGS-B with the analytic gradient from every one of
   the 4,500 starts (run in full), and a straightforward scipy loop with numeric gradients (timed
   on 100 evenly spread starts and extrapolated to 4,500) -- wall time and best objective;
4. coverage of the 95 % intervals over repeated draws from known laws (tests/test_laws.py's
   regimes, plus one where an input spans only 1.3 decades).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import platform
import sys
import time

import numpy as np
from scipy import optimize, special

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/, for the data

import test_laws as known

from raysweep.laws import fitting as laws
from raysweep.laws import models
from raysweep.laws import starts as start_points
from raysweep.laws.law import additive, additive_form

REF_CI = known.REF_CI
NARROW = ("2 inputs, narrow M", additive(0.05, {"dp": (3.0, 0.3), "params": (6.0, 0.3)}), 60, 0.02,
          {"params": (1e6, 2e7)})  # 1.3 decades of model size, as in a 4-size DeiT grid


def timed(fn, repeat=1):
    """(result, best wall seconds of REPEAT calls)."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def naive_objective(theta, log_n, log_d, log_loss):
    """The straightforward version: per-start numpy, scipy's huber, no gradient."""
    e, a, b, alpha, beta = theta
    pred = special.logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
    return special.huber(laws.DELTA, pred - log_loss).sum()


def row(label: str, secs: float, objective=None, at_optimum=None) -> str:
    cells = [f"{label:<58}", f"{secs:>9.2f}", f"{objective:>16.10g}" if objective else " " * 16,
             f"{at_optimum:>18.1%}" if at_optimum is not None else ""]
    return " ".join(cells).rstrip()


def search_section(X, y) -> list[str]:
    form = additive_form(["N", "D"])
    cols, logy = laws._check(form, X, y)
    mdl, logx = models.model(form, cols), np.log(np.stack([cols["N"], cols["D"]]))
    starts, ones = start_points.starts(form), np.ones(len(y))
    fast, t_fast = timed(lambda: laws.fit_law(X, y), repeat=5)
    full, t_full = timed(lambda: [laws._polish(s, mdl, logy, ones)[1] for s in starts])
    subset = starts[:: len(starts) // 100][:100]
    args = (logx[0], logx[1], logy)
    naive, t_naive = timed(lambda: [optimize.minimize(naive_objective, s, args=args,
                                                      method="L-BFGS-B").fun for s in subset])

    def hit(objectives) -> float:  # share of starts that reach fit_law's optimum (to 1e-6)
        return float(np.mean(np.array(objectives) <= fast.objective * (1 + 1e-6)))
    law = fast.law
    return [
        f"{'method':<58} {'wall s':>9} {'best objective':>16} {'starts at optimum':>18}",
        row("fit_law: 4,500 starts, batched LM screen + L-BFGS-B polish", t_fast, fast.objective),
        row("L-BFGS-B, analytic gradient, from all 4,500 starts", t_full, min(full), hit(full)),
        row("L-BFGS-B, numeric gradient, 100 starts (measured)", t_naive, min(naive), hit(naive)),
        row("  ... extrapolated to 4,500 starts", t_naive * len(starts) / len(subset)),
        "",
        (f"reference fit: E {law.E:.4f}, A {law.terms['N'][0]:.1f}, B {law.terms['D'][0]:.1f}, "
         f"alpha {law.terms['N'][1]:.4f}, beta {law.terms['D'][1]:.4f}, objective "
         f"{fast.objective:.8f} (replication: 1.8172, 477.8, 2143.9, 0.3473, 0.3672, 0.00101827)"),
    ]


def bootstrap_section(X, y) -> list[str]:
    _, t_base = timed(lambda: laws.fit_law(X, y))
    boot, t_boot = timed(lambda: laws.fit_law(X, y, bootstrap=1000, seed=0))
    lines = [f"1,000 bootstrap refits: {t_boot - t_base:.1f} s (fit + refits {t_boot:.1f} s)",
             f"{'parameter':<12} {'ours (1,000)':>22} {'replication (4,000)':>22}"]
    for key, (lo, hi) in REF_CI.items():
        got = boot.ci[key]
        lines.append(f"{key:<12} {got[0]:>10.4g} - {got[1]:<9.4g} {lo:>10.4g} - {hi:<9.4g}")
    return lines


def coverage(law, n, noise, draws, boot, ranges) -> tuple[dict, float]:
    rng, hits = np.random.default_rng(1), {}
    t0 = time.perf_counter()
    for i in range(draws):
        X = {k: np.exp(rng.uniform(*np.log(ranges[k]), n)) for k in law.terms}
        y = law.predict(X) * np.exp(noise * rng.standard_normal(n))
        fit = laws.fit_law(X, y, bootstrap=boot, seed=i)
        for key, value in known.truth(law).items():
            hits.setdefault(key, []).append(fit.ci[key][0] <= value <= fit.ci[key][1])
    return {k: float(np.mean(v)) for k, v in hits.items()}, time.perf_counter() - t0


def coverage_section(draws: int, boot: int) -> list[str]:
    regimes = [(name, *known.REGIMES[name], {}) for name in sorted(known.REGIMES)] + [NARROW]
    lines = [(f"coverage of 95 % intervals, {draws} draws x {boot} resamples each "
              f"(binomial sd at 95 %: {np.sqrt(0.95 * 0.05 / draws):.3f})")]
    for name, law, n, noise, ranges in regimes:
        cov, secs = coverage(law, n, noise, draws, boot, known.RANGES | ranges)
        cells = ", ".join(f"{k} {v:.2f}" for k, v in cov.items())
        lines.append(f"{name:<20} n={n:<4} noise={noise:<6} {secs:6.0f} s  {cells}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--draws", type=int, default=100, help="draws per coverage regime")
    p.add_argument("--boot", type=int, default=100, help="resamples per coverage draw")
    args = p.parse_args()
    print(f"bench_fit  {datetime.date.today()}  {platform.machine()} {platform.processor()}  "
          f"python {platform.python_version()}  numpy {np.__version__}")
    X, y = known.chinchilla()
    for section in (search_section(X, y), bootstrap_section(X, y),
                    coverage_section(args.draws, args.boot)):
        print("\n".join(section) + "\n", flush=True)


if __name__ == "__main__":
    main()
