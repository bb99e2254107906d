"""Fractal generation speed: 50,000 images at 16 px (target: under 20 s on the 2-core dev box),
generated from scratch, then read back from the disk cache, then through the registry
(load_dataset, which adds the 1 -> 3 channel copy and the in-process memo).

Run: .venv/bin/python tests/benchmarks/bench_fractal.py [--threads N]
Prints one line per measurement: what, seconds, images per second.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

from raysweep.data import fractal, load

PARAMS = {"classes": 50, "images_per_class": 900, "test_per_class": 100, "seed": 0}  # 50,000
IMAGE_SIZE = 16                       # px; default_points(16) = 1,024 points per image


def timed(label: str, images: int, fn):
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds * 1000:9.1f} ms {images / seconds:>13,.0f} images/s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = PARAMS["classes"] * (PARAMS["images_per_class"] + PARAMS["test_per_class"])
    print(f"# {n:,} images of {IMAGE_SIZE} px, {fractal.default_points(IMAGE_SIZE):,} points each;"
          f" torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or '?'} "
          f"({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RAYSWEEP_CACHE"] = cache
        made = timed("generate (no cache)", n, lambda: fractal.load(IMAGE_SIZE, PARAMS, cache))
        size_mb = fractal.cache_path(cache, IMAGE_SIZE, PARAMS).stat().st_size / 2 ** 20
        again = timed(f"load from disk cache ({size_mb:.0f} MiB)", n,
                      lambda: fractal.load(IMAGE_SIZE, PARAMS, cache))
        assert all(torch.equal(a, b) for a, b in zip(made, again))
        timed("load_dataset, 3 channels (cache on disk)", n,
              lambda: load.load_dataset("fractal", image_size=IMAGE_SIZE, params=PARAMS))
        timed("load_dataset again (in-process memo)", n,
              lambda: load.load_dataset("fractal", image_size=IMAGE_SIZE, params=PARAMS))
        small = {**PARAMS, "images_per_class": 18, "test_per_class": 2}
        timed("generate 1,000 images at 64 px (16,384 pts)", 50 * 20,
              lambda: fractal.generate(64, small))


if __name__ == "__main__":
    main()
