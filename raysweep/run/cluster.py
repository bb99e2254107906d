"""The Ray edge that every Tune run shares: connecting to a cluster, what a trial asks of it, how
a worker sets itself up, and what Ctrl-C does. raysweep.run.executor (the grid) and
raysweep.hparams.search (the proxy trials) build their Tune experiments on these; no other module
imports Ray.

Ctrl-C: Tune's own SIGINT handler ends the experiment and then returns from Tuner.fit as if it
had finished (ray/tune/tune.py: it sets an event the loop checks, restores the previous handler,
cleans up and returns), so a command could not tell an interrupted run from a finished one.
`stop_on_sigint` switches it off (TUNE_DISABLE_SIGINT_HANDLER) and ends the experiment itself,
through a Tune Stopper, then raises KeyboardInterrupt; the commands turn that into exit 130.

A trial's GPU share is logical in Ray (docs/design.md §3); `worker_device` makes it a cap on
torch's allocator (sweep/memory.memory_fraction, which the planner checks each trial's estimated
peak against before launch), so an over-packed GPU fails in the trial that overran, with its
numbers, instead of in whichever neighbour allocated next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import sys
import threading

import ray
from ray import tune

from raysweep.errors import InputError
from raysweep.store import layout, storage
from raysweep.sweep.memory import MEMORY_MARGIN, memory_fraction  # noqa: F401 -- the cap's
from raysweep.sweep.plan import Trial

CONNECT_TIMEOUT_S = 5.0   # a cluster's GCS port answers in milliseconds when it is up


def connect(address: str | None) -> None:
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:  # the user's cluster: its own authentication applies
        check_reachable(address)
        ray.init(address=address, log_to_driver=False)
    else:  # a Ray of this process's own, on this machine, that nothing else connects to
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(include_dashboard=False, log_to_driver=False)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """InputError unless HOST:PORT (or ray://HOST:PORT) accepts a connection within timeout_s:
    ray.init retries an absent cluster for minutes. `auto` and other forms are left to Ray."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address)
    if match is None:
        return
    host, port = match[1], int(match[2])
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        raise InputError(f"--address / RAY_ADDRESS {address}: no Ray cluster answers at "
                         f"{host}:{port} ({err or 'timed out'}; waited at most {timeout_s:g} s); "
                         f"expected the head node's address, e.g. HEAD_IP:6379 (`ray status` "
                         f"on the head prints it), or no --address for a local Ray") from None


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


def request(config: dict):
    """A grid trial's request, from its Tune config (run.track.labels: cpus, gpu_share).

    Read from the config, never looked up in the grid's trials: Tune unpickles the trainable with
    this function for each trial it starts, so a closure over every trial made each start cost
    time in proportion to the grid, and the grid the square of its size."""
    return resources_for({"CPU": config["cpus"], "GPU": config["gpu_share"]})


def worker_device(trial: Trial) -> str:
    """Inside a Tune worker: the device `trial` runs on. For a trial that trains, torch's threads
    are set to its CPUs (never more threads than the cores it was given), and the device is a GPU
    only when Ray assigned it one, its allocator capped at the trial's share of it
    (memory_fraction). A simulated trial runs on "cpu" and leaves torch unloaded (run/trial.py)."""
    if trial.config["backend"] == "simulate":
        return "cpu"
    import torch  # here, not above: see the docstring
    cpus, gpu_share = trial.resources.get("CPU", 1), trial.resources.get("GPU", 0)
    torch.set_num_threads(max(1, int(cpus)))
    if not (ray.get_gpu_ids() and torch.cuda.is_available()):
        return "cpu"
    cap = memory_fraction(gpu_share)
    if cap is not None:
        torch.cuda.set_per_process_memory_fraction(cap)
    return "cuda"


def oom_errors() -> tuple[type[BaseException], ...]:
    """What a trial that ran out of GPU memory raises, to catch: torch's error once torch is
    loaded, nothing before (a trial that did not load torch cannot have run out of GPU memory)."""
    torch = sys.modules.get("torch")
    return () if torch is None else (torch.cuda.OutOfMemoryError,)


def gpu_bytes() -> int:
    """The memory of the worker's GPU (a trial on it has loaded torch)."""
    return sys.modules["torch"].cuda.get_device_properties(0).total_memory


def oom_message(trial_id: str, gpu_share: float, error: BaseException,
                total_bytes: int | None = None) -> str:
    """What a trial that ran out of GPU memory under its cap says: the trial, its share and cap,
    and what it tried to allocate (from torch's message)."""
    asked = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", str(error))
    cap = memory_fraction(gpu_share)
    capped = "no cap" if cap is None else f"capped at {cap:.3g} of the GPU"
    if cap is not None and total_bytes:
        capped += f" = {cap * total_bytes / 2 ** 30:.2f} GiB of {total_bytes / 2 ** 30:.1f} GiB"
    return (f"trial {trial_id} ran out of GPU memory: its share is {gpu_share:g} of a GPU "
            f"({capped}, torch's allocator only) and it tried to allocate "
            f"{asked[1] if asked else 'more'}; give its model size a larger gpu share in the "
            f"sweep's resources, or a smaller batch_size")


def tune_storage(out: str) -> str | None:
    """Where Tune keeps its experiment logs: OUT/tune for a local OUT; on object storage, Tune's
    own default (its logs are not results, and they stay on the driver)."""
    if storage.is_remote(out):
        return None
    return os.path.abspath(os.path.join(storage.resolve(out)[1], layout.TUNE))


# ---- Ctrl-C ---------------------------------------------------------------------------------

TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"   # Tune reads it when fit() starts
_SIGINT = threading.Event()   # module-level: Tune may pickle the stopper, never an Event


class SigintStopper(tune.Stopper):
    """Ends the whole experiment once Ctrl-C was pressed (Tune asks stop_all every step)."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return _SIGINT.is_set()

    def stop_all(self) -> bool:
        return _SIGINT.is_set()


def interrupted() -> bool:
    return _SIGINT.is_set()


@contextlib.contextmanager
def stop_on_sigint():
    """Around Tuner.fit of a Tuner whose RunConfig has stop=SigintStopper(): the first SIGINT
    stops the experiment (Tune stops the trials in flight; finished ones have their records), a
    second raises KeyboardInterrupt at once; after a SIGINT, leaving raises KeyboardInterrupt.
    Off the main thread, where no handler can be set, Tune's own handling is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SIGINT.clear()
    previous, saved = signal.getsignal(signal.SIGINT), os.environ.get(TUNE_SIGINT)

    def first(signum, frame):
        _SIGINT.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        say("Ctrl-C: stopping the trials in flight (press again to stop at once)")

    os.environ[TUNE_SIGINT] = "1"
    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if saved is None:
            os.environ.pop(TUNE_SIGINT, None)
        else:
            os.environ[TUNE_SIGINT] = saved
    if _SIGINT.is_set():
        raise KeyboardInterrupt("interrupted: the Tune experiment was stopped")


def say(line: str) -> None:
    """The default `echo`: a module function, not `print` itself, because Tune pickles its
    callbacks, and once Ray's tqdm_ray has swapped `builtins.print` cloudpickle refuses the old
    one."""
    print(line, flush=True)
