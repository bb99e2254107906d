"""Repeated fault injection on a Ray of several nodes: what is lost when nodes, workers and the
driver die in the middle of a grid.

Run: .venv/bin/python tests/benchmarks/bench_faults.py [--rounds 9] [--every 5] [--hold 4]
         [--sizes 8] [--faults node,worker,driver]
     (5-10 minutes on a 2-core machine: each driver restart starts fresh Ray workers)

A simulated grid (sweeps/simulate.yaml shrunk to --sizes model sizes x 3 Dp x (pretrain, finetune),
half a GPU per trial, each holding it --hold s, retries: 0 so that a fault charged to a trial's
retry budget shows up as a `failed` record) runs with `python -m raysweep.grid` on a head node and
two worker nodes of 2 CPUs and 1 fake GPU (tests/multinode.py). Every --every seconds, while
trials run, one fault is injected, in turn:
  node    SIGKILL every process of a worker node that runs a trial, then add a replacement node
  worker  SIGKILL the worker process of one running trial
  driver  SIGKILL the driver, wait for Ray to end its trials, run the same command again
until --rounds faults. Then the grid is left to finish, and the results dataset is checked:
planned trials without a record, trials with more than one record file, records not `ok`, records
with attempts != 1 or a retry-budget file (a fault charged to the trial), and result files written
before a driver kill that changed afterwards (a finished trial run again). All should be 0.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # tests/multinode.py

from multinode import ROOT, Driver, MultiNode, wait_until

from raysweep.store import results
from raysweep.sweep import plan, spec

KINDS = ("node", "worker", "driver")


def write_sweep(path: Path, sizes: int, hold_s: float) -> Path:
    raw = yaml.safe_load((ROOT / "sweeps" / "simulate.yaml").read_text())
    raw.update(name="faults", model={**raw["model"], "depth": 1,
                                     "heads": list(range(1, sizes + 1))},
               dp=[0.25, 0.5, 1.0], df=[1.0], teachers={}, retries=0,
               resources={"default": {"gpu": 0.5, "cpu": 1}})
    # error ~0.1 whatever the size, so every trial can end ok (no `diverged` to tell apart)
    raw["simulate"].update(hold_s=hold_s, plain={"E": 0.1, "terms": {"dp": {"coef": 1.0,
                                                                            "exponent": 0.3}}})
    path.write_text(yaml.safe_dump(raw))
    return path


class Run:
    """The grid, its driver, and the faults injected into it so far."""

    def __init__(self, nodes: MultiNode, sweep: Path, out: Path):
        self.nodes, self.sweep, self.out = nodes, sweep, out
        self.injected, self.interrupted = Counter(), Counter()
        self.frozen: dict[str, tuple[bytes, int]] = {}  # result files at driver kills
        self.driver = self.start()

    def start(self) -> Driver:
        return Driver(self.sweep, self.out, self.nodes.address, self.out.parent / "driver.log")

    def inject(self, kind: str) -> bool:
        """One fault of KIND; False when no trial runs now to be hit by it."""
        running = {n.node_id: self.nodes.running(self.out, n) for n in self.nodes.nodes}
        busy = [n for n in self.nodes.nodes if running[n.node_id]]
        if not busy:
            return False
        if kind == "node":
            node = random.choice(busy)
            self.nodes.preempt(node)
            self.nodes.add_node()
            hit = len(running[node.node_id])
        elif kind == "worker":
            pid = random.choice([p for r in running.values() for p in r])
            os.kill(pid, signal.SIGKILL)
            hit = 1
        else:
            self.kill_driver()
            hit = sum(len(r) for r in running.values())
        self.injected[kind] += 1
        self.interrupted[kind] += hit
        return True

    def kill_driver(self) -> None:
        self.driver.proc.send_signal(signal.SIGKILL)
        self.driver.proc.wait()
        wait_until(lambda: not self.nodes.workers(), "Ray to end the dead driver's trials", 120)
        for path in (self.out / "results").glob("*.parquet"):
            self.frozen.setdefault(path.name, (path.read_bytes(), path.stat().st_mtime_ns))
        self.driver = self.start()


def inject_all(run: Run, rounds: int, every: float, faults: list[str]) -> None:
    kinds = itertools.cycle(faults)
    kind, due = next(kinds), time.monotonic() + every
    while sum(run.injected.values()) < rounds and run.driver.proc.poll() is None:
        if time.monotonic() >= due and run.inject(kind):
            print(f"  {time.strftime('%H:%M:%S')} injected {kind}", flush=True)
            kind, due = next(kinds), time.monotonic() + every
        time.sleep(0.1)


def losses(run: Run, planned: set[str]) -> dict[str, int]:
    rows = {r["trial_id"]: r for r in results.read(str(run.out)).to_pylist()}
    files = Counter(p.stem for p in (run.out / "results").glob("*.parquet"))
    now = {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
           for p in (run.out / "results").glob("*.parquet")}
    return {
        "planned trials without a record": len(planned - set(rows)),
        "trials with more than one record file": sum(n > 1 for n in files.values()),
        "records not ok": sum(r["status"] != "ok" for r in rows.values()),
        "records with attempts != 1": sum(r["attempts"] != 1 for r in rows.values()),
        "retry-budget files (faults charged)": len(list(run.out.glob("attempts/*.errors"))),
        "finished trials run again after a driver kill": sum(
            now.get(name) != before for name, before in run.frozen.items()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=9, help="faults to inject (default 9)")
    p.add_argument("--every", type=float, default=5.0, help="seconds between faults (default 5)")
    p.add_argument("--hold", type=float, default=4.0, help="seconds each trial holds its slot")
    p.add_argument("--sizes", type=int, default=8, help="model sizes (6 trials each; default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault targets")
    p.add_argument("--faults", default=",".join(KINDS),
                   help=f"fault kinds to take turns, comma-separated (default {','.join(KINDS)})")
    args = p.parse_args()
    faults = args.faults.split(",")
    if not faults or set(faults) - set(KINDS):
        p.error(f"--faults: expected some of {', '.join(KINDS)}, got {args.faults!r}")
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench_faults"))
    sweep = write_sweep(work / "faults.yaml", args.sizes, args.hold)
    planned = {t.trial_id for t in plan.plan(spec.load(sweep))}
    started = time.monotonic()
    nodes = MultiNode(gpu_nodes=2, cpus=2, gpus=1)
    try:
        run = Run(nodes, sweep, work / "out")
        inject_all(run, args.rounds, args.every, faults)
        code = run.driver.wait()
    finally:
        nodes.shutdown()
    wall = time.monotonic() - started
    lost = losses(run, planned)
    print(f"\n{datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPUs; "
          f"driver exit code {code}; {wall:.0f} s wall; output in {work}")
    print(f"grid: {len(planned)} simulated trials, half a GPU each, {args.hold:g} s each, "
          f"retries 0, on 2 worker nodes x 1 fake GPU")
    print(f"{'fault':8s} {'injected':>8s} {'trials interrupted':>18s}")
    for kind in KINDS:
        print(f"{kind:8s} {run.injected[kind]:8d} {run.interrupted[kind]:18d}")
    resubmitted = (work / "driver.log").read_text().count("running it again")
    print(f"  trials Tune gave up on, suggested again by the searcher: {resubmitted}")
    for what, n in lost.items():
        print(f"  {what}: {n}")
    return 0 if code == 0 and not any(lost.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
