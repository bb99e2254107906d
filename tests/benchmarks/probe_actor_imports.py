"""What a Ray actor's imports cost when many start at once: the time from creating 16 actors
(1 CPU each, on a local Ray with 16 fake CPUs, as the test suite's fixture has) until all answer,
when each imports raysweep.run.trial (what a trial's worker imports today: torch, timm and
torchvision with it) against ray.tune, pyarrow, numpy and yaml alone (what a simulated trial
needs). Light, heavy, light again, so a warm-up shows.

    RAY_AUTH_MODE=disabled .venv/bin/python tests/benchmarks/probe_actor_imports.py
"""

from __future__ import annotations

import os
import time

import ray

ACTORS = 16


@ray.remote(num_cpus=1)
class Importer:
    def __init__(self, heavy: bool):
        if heavy:
            import raysweep.run.trial  # noqa: F401
        else:
            import numpy  # noqa: F401
            import pyarrow  # noqa: F401
            import ray.tune  # noqa: F401
            import yaml  # noqa: F401

    def ready(self) -> bool:
        return True


def main() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=ACTORS, num_gpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    for heavy in (False, True, False):
        start = time.perf_counter()
        actors = [Importer.remote(heavy) for _ in range(ACTORS)]
        ray.get([a.ready.remote() for a in actors])
        print(f"{ACTORS} actors importing {'raysweep.run.trial' if heavy else 'ray.tune alone'}: "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        for a in actors:
            ray.kill(a)
        time.sleep(2)


if __name__ == "__main__":
    main()
