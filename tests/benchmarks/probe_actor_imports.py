"""What a Ray actor's imports cost when many start at once: the time from creating 16 actors
(1 CPU each, on a local Ray with 16 fake CPUs, as the test suite's fixture has) until all answer,
when each imports ray.tune, pyarrow, numpy and yaml alone; raysweep.run.executor (the Tune
trainable's module: what every trial's worker imports); and raysweep.run.stages (what a worker
that trains adds: torch, torchvision and timm). Light first and last, so a warm-up shows; name
some of the three as arguments to run those alone (code before raysweep.run.stages existed:
`PYTHONPATH=OLD_CHECKOUT ... "ray.tune alone" raysweep.run.executor`).

    RAY_AUTH_MODE=disabled .venv/bin/python tests/benchmarks/probe_actor_imports.py [LABEL ...]
"""

from __future__ import annotations

import importlib
import os
import sys
import time

import ray

ACTORS = 16
LIGHT = ("numpy", "pyarrow", "ray.tune", "yaml")
IMPORTS = {"ray.tune alone": LIGHT, "raysweep.run.executor": ("raysweep.run.executor",),
           "raysweep.run.stages": ("raysweep.run.executor", "raysweep.run.stages")}


@ray.remote(num_cpus=1)
class Importer:
    def __init__(self, modules: tuple[str, ...]):
        for name in modules:
            importlib.import_module(name)

    def ready(self) -> bool:
        return True


def main() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=ACTORS, num_gpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    labels = sys.argv[1:] or ["ray.tune alone", "raysweep.run.executor", "raysweep.run.stages"]
    for label in [*labels, labels[0]]:
        start = time.perf_counter()
        actors = [Importer.remote(IMPORTS[label]) for _ in range(ACTORS)]
        ray.get([a.ready.remote() for a in actors])
        print(f"{ACTORS} actors importing {label}: {time.perf_counter() - start:.1f} s", flush=True)
        for a in actors:
            ray.kill(a)
        time.sleep(2)


if __name__ == "__main__":
    main()
