"""Issue 35, what the BCa interval's jackknife costs: a study's fits (both boundary laws, the paper
form) without a bootstrap, with DEFAULT_BOOTSTRAP resamples, and with them and the
JACKKNIFE_GROUPS delete-a-group refits, and the boundary read off them, timed side by side
(alternating, best of REPEATS); the bootstrap's time is the difference from the point fits'.

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/bench_jackknife_cost.py
     [--repeat 3]      (about a minute, 2 cores)

Rows: bench_forms_truths's additive truth (4 sizes x 6 Dp x 4 Df x 2 replicates: 192 a law).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_forms_truths import TRUTHS, rows_of
from threadpoolctl import threadpool_limits

from raysweep.laws import boundary as bnd
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS, PAPER, paper_form
from raysweep.laws.fitting import JACKKNIFE_GROUPS, fit_form
from raysweep.laws.study import DEFAULT_BOOTSTRAP


def fits(rows, bootstrap: int, jackknife: int) -> dict:
    out = {}
    for name in BOUNDARY_LAWS:
        mine = [r for r in rows if r["stage"] == LAWS[name].stage]
        form = paper_form(name).without({"teacher_params": "single value"})
        X = {k: np.array([r[k] for r in mine], dtype=float) for k in form.inputs}
        y = np.array([r[LAWS[name].target] for r in mine])
        out[name] = fit_form(form, X, y, bootstrap=bootstrap, seed=0, jackknife=jackknife)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    rows = rows_of(*TRUTHS[PAPER], 0)
    best = {}
    with threadpool_limits(1, "blas"):
        for _ in range(args.repeat):
            for k in ((0, 0), (DEFAULT_BOOTSTRAP, 0), (DEFAULT_BOOTSTRAP, JACKKNIFE_GROUPS)):
                t = time.perf_counter()
                found = fits(rows, *k)
                t_fit = time.perf_counter() - t
                t = time.perf_counter()
                bnd.boundaries(rows, {"d": found})
                t_bnd = time.perf_counter() - t
                old = best.get(k, (np.inf, np.inf))
                best[k] = (min(old[0], t_fit), min(old[1], t_bnd))
    point = best[0, 0][0]
    for (b, k), (t_fit, t_bnd) in best.items():
        print(f"{b} resamples, {k} jackknife groups: fits of both laws {t_fit:.2f} s (bootstrap "
              f"and jackknife {t_fit - point:.2f} s); boundary of 16 slices {t_bnd:.2f} s (best "
              f"of {args.repeat})")


if __name__ == "__main__":
    main()
