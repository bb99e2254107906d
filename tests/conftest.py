"""Session-wide test settings: one torch thread (the machine has two cores and tests may run
beside a Ray worker), and a scratch cache so the fractal cache never touches the user's."""

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _scratch_cache(tmp_path_factory):
    os.environ["RAYSWEEP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the session: 16 fake CPUs and 2 fake GPUs, so fractional-GPU packing is
    exercised on a CPU machine (trials that train set torch to one thread each)."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    ray.init(num_cpus=16, num_gpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()
