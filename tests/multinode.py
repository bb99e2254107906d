"""A Ray cluster of several nodes on this machine, and the faults the tests inject into it.

Shape, and why:
- `ray.cluster_utils.Cluster` starts a head node (no CPUs, no GPUs: it only hosts the driver, so
  trials land on worker nodes) and worker nodes with fake GPUs, with connect=False: the test process
  may already be the driver of the session's single-node Ray (`ray_local`), and a process can drive
  only one Ray.
- The driver is what a user runs, `python -m raysweep.grid --sweep F --out D --address ADDR`, in a
  subprocess, so it can be SIGKILLed and run again like a real command.
- Faults come from outside, as on a real cluster: `preempt` SIGKILLs every process of a node (a
  spot reclaim, no grace period), `kill_trial` SIGKILLs one trial's worker process (found under
  its node's raylet by the title Ray gives a running Tune trial), `Driver.kill` SIGKILLs the driver.
- The cluster writes its address file (`ray_current_cluster`) under a private RAY_TMPDIR, so a
  plain `ray.init()` elsewhere on this machine (another test session) never joins it.

Linux only (process trees are read from /proc), as Ray's multi-node test cluster is.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Ray's process title for a worker that runs a Tune function trial's `train` (idle: no ".train").
TRIAL_TITLE = "ray::ImplicitFunc.train"


def children(pid: int) -> list[int]:
    """Processes whose parent is PID (the workers a raylet has started)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited while we looked
            continue
        # the 4th field, after the parenthesised name (which may hold spaces)
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def raylet(node) -> int:
    """PID of a node's raylet, the parent of every worker process of that node."""
    return node.all_processes["raylet"][0].process.pid


class MultiNode:
    """A head node plus `gpu_nodes` worker nodes of `cpus` CPUs and `gpus` fake GPUs each."""

    def __init__(self, gpu_nodes: int = 2, cpus: int = 2, gpus: int = 1):
        from ray.cluster_utils import Cluster

        self.cpus, self.gpus = cpus, gpus
        # Short: Ray's unix socket paths live below it and must stay under 108 characters.
        self.tmp = tempfile.mkdtemp(prefix="rsf", dir="/tmp")
        self._saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_AUTH_MODE")}
        os.environ["RAY_TMPDIR"] = self.tmp
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        self.cluster = Cluster(initialize_head=True, connect=False,
                               head_node_args={"num_cpus": 0, "include_dashboard": False})
        for _ in range(gpu_nodes):
            self.add_node()
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def nodes(self) -> list:
        """The worker nodes alive now, in a stable order."""
        return sorted(self.cluster.worker_nodes, key=lambda n: n.node_id)

    def add_node(self):
        return self.cluster.add_node(num_cpus=self.cpus, num_gpus=self.gpus)

    def preempt(self, node) -> None:
        """SIGKILL every process of NODE, as a spot reclaim would (no graceful shutdown)."""
        self.cluster.remove_node(node, allow_graceful=False)

    def trial_pids(self, node=None) -> list[int]:
        """PIDs of the workers running a trial now, on NODE or on every worker node."""
        nodes = [node] if node is not None else self.nodes
        return [p for n in nodes for p in children(raylet(n)) if title(p).startswith(TRIAL_TITLE)]

    def running(self, node=None) -> dict[int, str]:
        """PID -> raysweep trial id of each trial running now, on NODE or anywhere. A trial's
        worker works in EXPERIMENT/working_dirs/<Tune trial>, and Tune's driver writes that trial's
        params.json (our trial config) into EXPERIMENT/driver_artifacts/<Tune trial> as the trial
        starts. Its copy under OUT/tune/ comes only with the next experiment sync, seconds later:
        after a short trial has ended."""
        found = {}
        for pid in self.trial_pids(node):
            try:
                cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
                params = cwd.parent.parent / "driver_artifacts" / cwd.name / "params.json"
                found[pid] = json.loads(params.read_text())["raysweep_trial_id"]
            except (OSError, ValueError):  # exited, or params.json not (fully) written yet:
                continue                        # seen at the next look
        return found

    def workers(self) -> list[int]:
        """PIDs of every Tune trial worker, running or idle, on every worker node."""
        return [p for n in self.nodes for p in children(raylet(n))
                if title(p).startswith(TRIAL_TITLE.rsplit(".", 1)[0])]

    def ensure_nodes(self, count: int) -> None:
        """Bring the worker nodes back to COUNT (a test that preempted one leaves fewer)."""
        while len(self.nodes) < count:
            self.add_node()
        self.cluster.wait_for_nodes()

    def shutdown(self) -> None:
        self.cluster.shutdown()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.tmp, ignore_errors=True)


class Driver:
    """`python -m raysweep.grid` against the cluster, in a subprocess; output goes to `log`."""

    def __init__(self, sweep: Path, out: Path, address: str, log: Path, extra: tuple = ()):
        self.log = log
        self.command = [sys.executable, "-m", "raysweep.grid", "--sweep", str(sweep),
                        "--out", str(out), "--address", address, "--bootstrap", "0", *extra]
        with open(log, "a") as f:
            self.proc = subprocess.Popen(self.command, cwd=ROOT, stdout=f,
                                         stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float = 600) -> int:
        return self.proc.wait(timeout)


def wait_until(check: Callable[[], object], what: str, timeout: float = 300,
               driver: Driver | None = None, every: float = 0.05):
    """Poll CHECK until it returns something true, and return that; fail after TIMEOUT seconds
    or as soon as DRIVER has exited (with its output)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        if driver is not None and driver.proc.poll() is not None:
            raise AssertionError(f"driver exited ({driver.proc.returncode}) before {what}:\n"
                                 f"{driver.output()[-3000:]}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
