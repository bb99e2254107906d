"""Grid scheduling benchmarks (issue 3): makespan against the ideal and against stage barriers,
and the per-trial scheduling overhead.

    python tests/benchmarks/bench_grid.py overhead [--trials 200]
    python tests/benchmarks/bench_grid.py makespan [--sweep sweeps/default.yaml]
    python tests/benchmarks/bench_grid.py replay --walls runs/default [--slots 8]
    python tests/benchmarks/bench_grid.py schedule --walls runs/default

`overhead` runs simulated trials that do nothing (hold_s 0) on a local Ray with the machine's
CPUs, one CPU per trial: overhead per trial = makespan x slots / trials, everything Ray, Tune, the
searcher and the result write cost around an empty trial.

`makespan` runs the same sweep twice, side by side in one process, into two scratch OUTs: once as
raysweep runs it (one Tune experiment, a trial starts when its prerequisites are done) and once
stage by stage with a barrier after each stage (pretrain, then finetune, then distill). The ideal
is computed from the first run's own trial wall times: the larger of the critical path through
the DAG and the total trial time divided by the slots. Efficiency = ideal / makespan.

`replay` asks the same question with more slots than this machine has cores: the sweep's plan,
each trial answered by a sleep as long as its recorded wall time in WALLS (an OUT of the same
sweep, e.g. from `python -m raysweep.grid`), on a local Ray told it has --slots CPUs. Sleeping
trials leave the cores to Ray, so the run shows the schedule, not the training, at a width where
stage barriers cost something.

`schedule` takes Ray out altogether: a list scheduler run on paper with the recorded wall times, on
2 to 32 slots, starting ready trials in plan order against plan.critical_first's order (what the
executor uses), next to the ideal. It isolates the order's effect from Ray's own costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import os
import sys
import tempfile
import time

import ray

from raysweep import grid
from raysweep.run import executor
from raysweep.run.trial import Context
from raysweep.store import results
from raysweep.sweep import plan, spec


def slots(trials: list[plan.Trial]) -> int:
    cpus = int(ray.cluster_resources()["CPU"])
    return max(1, cpus // max(int(t.resources.get("CPU", 1)) for t in trials))


def run(trials, out: str) -> float:
    start = time.perf_counter()
    executor.run(trials, Context(out), name="bench", echo=lambda _: None)
    return time.perf_counter() - start


def ideal(trials: list[plan.Trial], out: str, n_slots: int) -> tuple[float, float, float]:
    """(ideal, critical path, total trial time / slots) from the trials' recorded wall times."""
    critical, packed = ideal_from(
        trials, {r["trial_id"]: r["wall_s"] for r in results.read(out).to_pylist()}, n_slots)
    return max(critical, packed), critical, packed


def ideal_from(trials: list[plan.Trial], wall: dict[str, float], n_slots: int
               ) -> tuple[float, float]:
    """(critical path, total trial time / slots)."""
    finish: dict[str, float] = {}
    for t in trials:  # plan order: prerequisites first
        finish[t.trial_id] = wall[t.trial_id] + max((finish[d] for d in t.depends_on), default=0)
    return max(finish.values()), sum(wall[t.trial_id] for t in trials) / n_slots


def makespan(args) -> None:
    sweep = spec.load(args.sweep)
    trials = plan.plan(sweep)
    compare(sweep.name, trials, slots(trials))


def compare(name: str, trials: list[plan.Trial], n_slots: int) -> None:
    """The DAG schedule and the stage-barrier one, side by side, against the ideal."""
    with tempfile.TemporaryDirectory() as dag_out, tempfile.TemporaryDirectory() as bar_out:
        dag = run(trials, dag_out)
        best, critical, packed = ideal(trials, dag_out, n_slots)
        barrier = sum(run([t for t in trials if t.stage == s], bar_out) for s in plan.STAGES)
    print(f"{name}: {len(trials)} trials, {n_slots} slots")
    print("| schedule | makespan s | ideal / makespan |")
    print("|---|---|---|")
    print(f"| raysweep (no stage barriers) | {dag:.1f} | {best / dag:.3f} |")
    print(f"| stage by stage, barriers | {barrier:.1f} | {best / barrier:.3f} |")
    print(f"ideal {best:.1f} s = max(critical path {critical:.1f} s, "
          f"total trial time / slots {packed:.1f} s); barrier / raysweep = {barrier / dag:.3f}")


def replay(args) -> None:
    sweep = spec.load(args.sweep)
    wall = recorded_walls(sweep, args.walls)
    trials = [dataclasses.replace(t, resources={"CPU": 1}, config={
        **t.config, "backend": "simulate",
        "simulate": {"hold_s": wall[t.trial_id], "plain": {"E": 0.5, "terms": {}},
                     "distilled": {"E": 0.5, "terms": {}}}}) for t in plan.plan(sweep)]
    compare(sweep.name, trials, args.slots)


def recorded_walls(sweep: spec.Sweep, out: str) -> dict[str, float]:
    wall = {r["trial_id"]: r["wall_s"] for r in results.read(out).to_pylist()}
    missing = [t.trial_id for t in plan.plan(sweep) if t.trial_id not in wall]
    if missing:
        sys.exit(f"{out}: no recorded wall time for {len(missing)} trials of {sweep.name} "
                 f"(e.g. {missing[0]}); expected an OUT of the same sweep")
    return wall


def list_schedule(order: list[plan.Trial], wall: dict[str, float], n_slots: int) -> float:
    """Makespan of starting, whenever a slot is free, the first ready trial of ORDER."""
    ok, running, now, waiting = set(), [], 0.0, list(order)
    while waiting or running:
        ready = [t for t in waiting if all(d in ok for d in t.depends_on)]
        for t in ready[: n_slots - len(running)]:
            heapq.heappush(running, (now + wall[t.trial_id], t.trial_id))
            waiting.remove(t)
        now, done = heapq.heappop(running)
        ok.add(done)
    return now


def schedule(args) -> None:
    sweep = spec.load(args.sweep)
    trials, wall = plan.plan(sweep), recorded_walls(sweep, args.walls)
    print("| slots | plan order s | critical first s | ideal s |")
    print("|---|---|---|---|")
    for n in (2, 4, 8, 16, 32):
        best = max(ideal_from(trials, wall, n))
        print(f"| {n} | {list_schedule(trials, wall, n):.1f} | "
              f"{list_schedule(plan.critical_first(trials), wall, n):.1f} | {best:.1f} |")


def overhead(args) -> None:
    raw = grid.yaml.safe_load(grid.default_sweep("simulate.yaml").read_text())
    raw["simulate"]["hold_s"] = 0.0
    raw["resources"] = {"default": {"gpu": 0.125, "cpu": 1}}
    sweep = spec.parse(raw)
    trials = [t for t in plan.plan(sweep, dp_images=range(1000, 1000 + args.trials))
              if t.stage == "pretrain"][: args.trials]
    n_slots = slots(trials)
    with tempfile.TemporaryDirectory() as out:
        total = run(trials, out)
    print(f"{len(trials)} empty trials on {n_slots} slots: makespan {total:.1f} s, "
          f"overhead {total * n_slots / len(trials):.3f} s per trial")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["overhead", "makespan", "replay", "schedule"])
    p.add_argument("--sweep", default=str(grid.default_sweep()))
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--walls", default="runs/default",
                   help="replay, schedule: an OUT of the sweep with the wall times")
    p.add_argument("--slots", type=int, default=8, help="replay: CPUs Ray is told it has")
    args = p.parse_args(argv)
    if args.what == "schedule":
        schedule(args)
        return 0
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
             num_cpus=args.slots if args.what == "replay" else None)
    {"overhead": overhead, "makespan": makespan, "replay": replay}[args.what](args)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
