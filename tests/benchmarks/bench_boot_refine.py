"""Bootstrap refits with and without the batched LM refinement before the L-BFGS-B polish, on
the rows of a real study.

    python tests/benchmarks/bench_boot_refine.py OUT [--resamples 200]

OUT: a grid's or an adaptive run's output (e.g. `python -m raysweep.grid --out runs/g0`). For
each of the four laws (raysweep.laws.catalogue.LAWS), with E fitted and without, on OUT's ok rows:
the full-data optimum, then RESAMPLES bootstrap refits twice from the same resamples and warm
starts: polish only (fitting.BOOT_REFINE = 0, the code before the refinement) and refined
(BOOT_REFINE as shipped). Prints per case the CPU seconds of each (time.process_time: other
tenants of a shared machine stretch wall time, not this process's CPU time), the mean L-BFGS-B
iterations, how many replicates end with a lower / higher objective than polish-only (by more
than 1e-9 relative), the largest shift of a coef's or an exponent's 95 % interval end, in
standard deviations of that parameter over the polish-only ensemble, and E's lower end in both
(what decides whether E is left out).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from raysweep.laws import boundary as bnd
from raysweep.laws import fitting, study
from raysweep.laws.catalogue import LAWS
from raysweep.store import results


def data(rows: list[dict], name: str) -> tuple[dict, np.ndarray]:
    stage, target, inputs, _ = LAWS[name]
    mine = [r for r in rows if r["stage"] == stage and r.get(target)
            and all(r.get(k) is not None for k in inputs)]
    cols = {k: np.array([r[k] for r in mine], dtype=float) for k in inputs}
    cols = {k: v for k, v in cols.items() if k not in study._unidentifiable(cols)}
    return cols, np.array([r[target] for r in mine], dtype=float)


def objective(ensemble, logx, logy, counts) -> np.ndarray:
    lse, _ = fitting._terms(ensemble, logx)
    return (counts * fitting._huber(lse - logy)).sum(axis=1)


def refits(theta, logx, logy, b: int, refine: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(ensemble, counts, CPU s, mean L-BFGS-B iterations) of fitting._bootstrap with REFINE."""
    iterations = []
    real = optimize.minimize

    def counted(*args, **kw):
        res = real(*args, **kw)
        iterations.append(res.nit)
        return res

    fitting.BOOT_REFINE, optimize.minimize = refine, counted
    try:
        n = len(logy)
        counts = np.random.default_rng(0).multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
        start = time.process_time()
        ensemble = fitting._bootstrap(theta, logx, logy, b, np.random.default_rng(0))
        return ensemble, counts, time.process_time() - start, float(np.mean(iterations))
    finally:
        optimize.minimize = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--resamples", type=int, default=200)
    args = ap.parse_args()
    rows = bnd.ok_rows(results.read(args.out))
    shipped = fitting.BOOT_REFINE
    print(f"{args.out}: {args.resamples} resamples; CPU s, mean L-BFGS-B iterations")
    print("| law | E | polish only | refined | lower / higher objective | largest interval shift "
          "| E's 2.5 % end |")
    print("|---|---|---|---|---|---|---|")
    totals = [0.0, 0.0]
    with threadpool_limits(1, "blas"):
        for name in LAWS:
            X, y = data(rows, name)
            names, logx, logy = fitting._check(X, y)
            for floor in (True, False):
                starts = fitting._starts(None, len(names), 0)
                if not floor:
                    starts = np.unique(np.column_stack(
                        [np.full(len(starts), fitting.NO_FLOOR), starts[:, 1:]]), axis=0)
                theta, _, _ = fitting._best(starts, logx, logy, np.ones(len(logy)))
                old, counts, t_old, it_old = refits(theta, logx, logy, args.resamples, 0)
                new, _, t_new, it_new = refits(theta, logx, logy, args.resamples, shipped)
                rel = (objective(new, logx, logy, counts) - objective(old, logx, logy, counts)
                       ) / objective(old, logx, logy, counts)
                keep = slice(1, None)   # coefs and exponents; E is judged by its lower end
                sd = np.nanstd(old[:, keep], axis=0) + 1e-12
                with np.errstate(invalid="ignore"):
                    ends = [np.nanpercentile(e[:, keep], [2.5, 97.5], axis=0) for e in (old, new)]
                shift = np.nanmax(np.abs(ends[1] - ends[0]) / sd)
                e_lo = " -> ".join(f"{np.percentile(np.exp(e[:, 0]), 2.5):.2g}" for e in (old, new)
                                   ) if floor else "-"
                totals[0] += t_old
                totals[1] += t_new
                print(f"| {name} | {'fitted' if floor else 'left out'} | {t_old:.2f} ({it_old:.0f}) "
                      f"| {t_new:.2f} ({it_new:.0f}) | {(rel < -1e-9).sum()} / {(rel > 1e-9).sum()} "
                      f"(worst +{max(rel.max(), 0):.1e}) | {shift:.3f} sd | {e_lo} |")
    print(f"| all | | {totals[0]:.1f} | {totals[1]:.1f} | | | |")


if __name__ == "__main__":
    main()
