"""Memory and time of one law fit against its number of rows, its starts in blocks of
`fitting.BLOCK_BYTES` of Jacobian and in one block (as before the blocks), issue 37.

    flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/bench_fit_memory.py \
        --rows 336 960 2400

The paper's form in Dp, model size and Df (7 parameters), fitted to rows drawn from a known law:
336 / 960 / 2,400 rows are the fine-tunings of a simulated grid of 700 / 1,925 / 5,000 trials.
Peak memory is tracemalloc's (numpy's arrays included), so it is the fit's own, not the process's.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from raysweep.laws import fitting
from raysweep.laws.law import additive

TRUTH = additive(0.1, {"dp": (40.0, 0.3), "params": (60.0, 0.3), "df": (9.0, 0.4)})
ONE_BLOCK = 2**62   # bytes: every start in one block
RANGES = {"dp": (6.5e4, 1.3e6), "params": (1e6, 8e7), "df": (5e3, 5e4)}


def rows(n: int, rng) -> tuple[dict, np.ndarray]:
    X = {k: np.exp(rng.uniform(*np.log(RANGES[k]), n)) for k in TRUTH.terms}
    return X, TRUTH.predict(X) * np.exp(0.01 * rng.standard_normal(n))


def measure(n: int, block_bytes: float, bootstrap: int) -> dict:
    X, y = rows(n, np.random.default_rng(n))
    fitting.BLOCK_BYTES = block_bytes
    tracemalloc.start()
    start = time.perf_counter()
    fit = fitting.fit_law(X, y, bootstrap=bootstrap)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"rows": n, "blocks": "one" if block_bytes == ONE_BLOCK else int(block_bytes),
            "peak_mb": round(peak / 2**20), "s": round(seconds, 2),
            "objective": fit.objective}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[336, 960, 2400])
    p.add_argument("--bootstrap", type=int, default=0)
    args = p.parse_args()
    blocks = fitting.BLOCK_BYTES
    for n in args.rows:
        for block_bytes in (blocks, ONE_BLOCK):
            print(json.dumps(measure(n, block_bytes, args.bootstrap)), flush=True)


if __name__ == "__main__":
    main()
