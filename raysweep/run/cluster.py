"""The Ray edge that every Tune run shares: connecting to a cluster, what a trial asks of it, and
how a worker sets itself up. raysweep.run.executor (the grid) and raysweep.hparams.search (the
proxy trials) build their Tune experiments on these; no other module imports Ray.
"""

from __future__ import annotations

import dataclasses
import os

import ray
import torch
from ray import tune

from raysweep.errors import InputError
from raysweep.store import layout, storage
from raysweep.sweep.plan import Trial


def connect(address: str | None) -> None:
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:  # the user's cluster: its own authentication applies
        ray.init(address=address, log_to_driver=False)
    else:  # a Ray of this process's own, on this machine, that nothing else connects to
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(include_dashboard=False, log_to_driver=False)


def check_storage(out: str) -> None:
    """A cluster of several machines must write to storage every machine sees (docs/design.md
    §10). Machines are counted by address: nodes of one machine (ray.cluster_utils.Cluster) share
    its disk."""
    hosts = {n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive")}
    reason = storage.node_local_reason(out) if len(hosts) > 1 else None
    if reason:
        raise InputError(f"{reason} ({len(hosts)} machines are in the cluster)")


def cluster_gpus() -> float:
    """GPUs the cluster has now or can scale up to (an autoscaling pool may have none running)."""
    now = ray.cluster_resources().get("GPU", 0)
    try:
        from ray._private.state import state

        most = (state.get_max_resources_from_cluster_config() or {}).get("GPU", 0)
    except Exception:  # noqa: BLE001 -- private API: no autoscaler, or it changed; use what runs now
        most = 0
    return max(now, most)


def fit_to_cluster(trials: list[Trial]) -> list[Trial]:
    """Drop GPU requests where the cluster has no GPUs, so a GPU sweep still runs on a laptop."""
    if cluster_gpus() > 0:
        return trials
    return [dataclasses.replace(t, resources={"CPU": t.resources.get("CPU", 1)}) for t in trials]


def resources_for(resources: dict):
    """A trial's {"GPU": fraction, "CPU": threads} as Tune's request (nothing: one CPU)."""
    res = {k: v for k, v in resources.items() if v}
    return tune.PlacementGroupFactory([res or {"CPU": 1}])


def worker_device(cpus: float) -> str:
    """Inside a Tune worker: torch's threads set to the trial's CPUs (never more threads than the
    cores it was given), and the device it trains on -- a GPU only when Ray assigned it one."""
    torch.set_num_threads(max(1, int(cpus)))
    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def tune_storage(out: str) -> str | None:
    """Where Tune keeps its experiment logs: OUT/tune for a local OUT; on object storage, Tune's
    own default (its logs are not results, and they stay on the driver)."""
    if storage.is_remote(out):
        return None
    return os.path.abspath(os.path.join(storage.resolve(out)[1], layout.TUNE))


def say(line: str) -> None:
    """The default `echo`: a module function, not `print` itself, because Tune pickles its
    callbacks, and once Ray's tqdm_ray has swapped `builtins.print` cloudpickle refuses the old
    one."""
    print(line, flush=True)
