"""Fault tolerance on a Ray of several nodes (tests/multinode.py): packing across nodes, a node lost
mid-trial, a trial's worker killed, code that keeps failing, and the driver SIGKILLed mid-grid.

Every scenario runs the user's command, `python -m raysweep.grid --address ADDR`, against one
cluster (a head node and two worker nodes of 2 CPUs and 1 fake GPU each, so half-GPU trials pack
four at a time, two per node) and checks the results dataset, the one source of truth: one record
per trial, with its status, attempts and timing. Faults are injected from the test, at moments
found by watching the cluster (trial worker processes) and OUT (checkpoints, results), never by
sleeping a guessed time. One test needs no cluster: what the searcher does when Tune gives a trial
up (which Ray 2.60 does at once when a node dies while a re-used worker is being handed a trial).
"""

import os
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml
from multinode import Driver, MultiNode, wait_until
from ray.tune.search import Searcher

from raysweep.run import executor
from raysweep.store import results
from raysweep.sweep import plan, spec

ROOT = Path(__file__).parent.parent
SIM = yaml.safe_load((ROOT / "sweeps" / "simulate.yaml").read_text())
SMOKE = {k: v for k, v in yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text()).items()
         if k != "hparams"}
HALF_GPU = {"default": {"gpu": 0.5, "cpu": 1}}   # 2 per 1-GPU node, 4 on the cluster
SLOTS = 4


@pytest.fixture(scope="module")
def cluster():
    nodes = MultiNode(gpu_nodes=2, cpus=2, gpus=1)
    yield nodes
    nodes.shutdown()


@pytest.fixture
def fresh(cluster):
    """The cluster as each test expects it: two worker nodes, no trial from an earlier driver."""
    cluster.ensure_nodes(2)
    wait_until(lambda: not cluster.workers(), "workers of the previous driver to exit", 60)
    return cluster


def write_sweep(path: Path, base: dict, **changes) -> Path:
    raw = {**base, **changes, "name": path.stem}
    if "simulate" in changes:
        raw["simulate"] = {**base["simulate"], **changes["simulate"]}
    path.write_text(yaml.safe_dump(raw))
    return path


def sim_sweep(tmp_path: Path, heads: int, hold_s: float) -> Path:
    """`heads` model sizes x (pretrain, finetune) = 2 x heads simulated trials, each holding half a
    GPU for hold_s seconds; a law whose error stays near 0.1 whatever the size, so all are ok."""
    law = {"E": 0.1, "terms": {"dp": {"coef": 1.0, "exponent": 0.3}}}
    return write_sweep(tmp_path / "sim.yaml", SIM, model={**SIM["model"], "depth": 1,
                       "heads": list(range(1, heads + 1))}, dp=[1.0], df=[1.0], teachers={},
                       resources=HALF_GPU, simulate={"hold_s": hold_s, "plain": law}, retries=0)


def train_sweep(tmp_path: Path, *, heads, downstream, pretrain_epochs, finetune_epochs,
                **changes) -> Path:
    epochs = {"pretrain": {**SMOKE["train"]["pretrain"], "epochs": pretrain_epochs},
              "finetune": {**SMOKE["train"]["finetune"], "epochs": finetune_epochs}}
    return write_sweep(tmp_path / "train.yaml", SMOKE, model={**SMOKE["model"], "heads": heads},
                       dp=[1.0], df=[0.2], downstream=downstream, teachers={}, train=epochs,
                       resources=HALF_GPU, **changes)


def run_grid(cluster, sweep: Path, out: Path, *extra: str) -> Driver:
    return Driver(sweep, out, cluster.address, out.parent / f"{out.name}.log", extra)


def finish(driver: Driver, code: int = 0) -> None:
    """The driver's exit: 0 when every trial is ok, 1 when some failed (docs: cli.EXIT_CODES)."""
    got = driver.wait()
    assert got == code, driver.output()[-3000:]


def rows(out: Path) -> dict[str, dict]:
    table = results.read(str(out)).to_pylist()
    return {r["trial_id"]: r for r in table}


def ok_at_first_attempt(out: Path, n: int) -> dict[str, dict]:
    """The records of OUT, asserted to be N trials, one file each, all ok at their first attempt."""
    table = rows(out)
    assert len(table) == len(result_files(out)) == n
    assert {r["status"] for r in table.values()} == {"ok"}
    assert {r["attempts"] for r in table.values()} == {1}
    return table


def result_files(out: Path) -> list[Path]:
    return sorted((out / "results").glob("*.parquet"))


def max_overlap(spans) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    return peak


def partial_epochs(out: Path) -> dict[str, int]:
    """trial_id -> epochs done in its resumable checkpoint, for every partial checkpoint now."""
    found = {}
    for path in (out / "checkpoints").glob("*.partial.pt"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError):  # deleted between glob and load: trial done
            continue
        found[path.name.split(".")[0]] = state["epoch"]
    return found


def test_a_trial_tune_gave_up_on_is_suggested_again_then_recorded_failed(tmp_path):
    # Tune errors a trial only when its worker is lost (restarts exhausted, or Ray 2.60's double
    # count of a loss while a reused worker is being reset): the searcher hands it out again, as a
    # new Tune trial, RESUBMITS times; only then is it dead, and its dependants skipped.
    trials = plan.plan(spec.load(sim_sweep(tmp_path, heads=1, hold_s=0.0)))
    pretrain, finetune = sorted(trials, key=lambda t: t.stage != "pretrain")
    skipped = []
    searcher = executor.ReadySearcher(trials, set(), lambda t, why: skipped.append(t))
    for n in range(executor.RESUBMITS + 1):
        suggested = searcher.suggest(f"tune-{n}")
        assert suggested["raysweep_trial_id"] == pretrain.trial_id
        assert searcher.suggest("none-ready") is None      # the fine-tune waits for it
        searcher.on_trial_complete(f"tune-{n}", error=True)
    assert pretrain.trial_id in searcher.dead and searcher.suggest("last") == Searcher.FINISHED
    assert skipped == [finetune]


def test_half_gpu_trials_pack_four_at_once_across_two_nodes(fresh, tmp_path):
    # 5 sizes x (pretrain -> finetune) = 10 trials of half a GPU, each holding it 8 s: long
    # enough that four workers, started one after another on a busy machine, overlap.
    out = tmp_path / "out"
    driver = run_grid(fresh, sim_sweep(tmp_path, heads=5, hold_s=8.0), out)
    per_node = []   # trials running on each node, sampled while the grid runs
    while driver.proc.poll() is None:
        per_node.append([len(fresh.trial_pids(n)) for n in fresh.nodes])
        time.sleep(0.05)
    finish(driver)
    table = rows(out)
    assert len(table) == len(result_files(out)) == 10
    assert {r["status"] for r in table.values()} == {"ok"}
    spans = [(r["started_at"].timestamp(), r["finished_at"].timestamp()) for r in table.values()]
    assert max_overlap(spans) == SLOTS          # the planned number at once, never more
    assert max(max(n) for n in per_node) == 2   # no node over-subscribed (1 GPU / 0.5)
    assert any(min(n) > 0 for n in per_node)    # both nodes ran trials at the same time


def test_node_lost_mid_trial_is_retried_elsewhere_without_burning_retries(fresh, tmp_path):
    # retries: 0, so a lost node that counted against the budget would leave `failed` records.
    out = tmp_path / "out"
    driver = run_grid(fresh, sim_sweep(tmp_path, heads=2, hold_s=8.0), out)

    def busy_node():
        for node in fresh.nodes:
            if trials := fresh.running(node):
                return node, set(trials.values())

    victim, lost = wait_until(busy_node, "a node running a trial", driver=driver)
    assert not lost & {p.stem for p in result_files(out)}      # mid-trial: no record yet
    lost_at = time.time()
    fresh.preempt(victim)                       # spot reclaim: every process of the node SIGKILLed
    fresh.add_node()                            # ... and the autoscaler's replacement
    rerun_on = set()                            # live nodes seen running a lost trial again
    while driver.proc.poll() is None:
        for node in fresh.nodes:
            if lost & set(fresh.running(node).values()):
                rerun_on.add(node.node_id)
        time.sleep(0.1)
    finish(driver)
    table = ok_at_first_attempt(out, 4)
    assert not list(out.glob("attempts/*.errors"))
    assert lost and rerun_on                    # retried elsewhere (the victim is gone) ...
    assert all(table[t]["started_at"].timestamp() > lost_at for t in lost)  # ... and recorded then


def test_killed_worker_is_retried_and_failing_trial_recorded_failed(fresh, tmp_path):
    # One pretraining, then two fine-tunes: digits (ships with the package) and CIFAR-10 from a
    # data root that does not exist, which raises on every attempt.
    out = tmp_path / "out"
    sweep = train_sweep(tmp_path, heads=[1], downstream=["digits", "cifar10"],
                        pretrain_epochs=200, finetune_epochs=1,
                        data_root=str(tmp_path / "no-data"), retries=1)
    victim = next(t.trial_id for t in plan.plan(spec.load(sweep)) if t.stage == "pretrain")

    def pretraining_worker():   # its worker, once the pretraining is an epoch in (mid-trial)
        pids = [pid for pid, t in fresh.running().items() if t == victim]
        return pids if victim in partial_epochs(out) else None

    # --no-data-check: the data root is missing on purpose, for the trial to fail on every attempt
    driver = run_grid(fresh, sweep, out, "--no-data-check")
    (pid,) = wait_until(pretraining_worker, "the pretraining's first epoch", driver=driver)
    os.kill(pid, signal.SIGKILL)
    finish(driver, code=1)                                            # a trial failed
    assert "1 of 3 trials did not finish ok (1 failed)" in driver.output()
    table = rows(out)
    by = {(r["stage"], r["downstream"]): r for r in table.values()}
    assert len(table) == len(result_files(out)) == 3
    pretrain = by[("pretrain", None)]
    assert pretrain["trial_id"] == victim
    assert pretrain["status"] == "ok" and pretrain["attempts"] == 1   # the kill cost no retry
    assert by[("finetune", "digits")]["status"] == "ok"               # the rest of the grid ran
    failed = by[("finetune", "cifar10")]
    assert failed["status"] == "failed" and failed["attempts"] == 2   # 1 try + retries: 1
    assert "DataNotFoundError" in failed["message"] and "after 2 attempts" in failed["message"]
    assert (out / "attempts" / f"{failed['trial_id']}.errors").read_text() == "2"
    assert not (out / "attempts" / f"{pretrain['trial_id']}.errors").exists()


def test_driver_killed_mid_grid_then_rerun_records_each_trial_once_and_resumes(fresh, tmp_path):
    # Two short pretrainings, then two fine-tunes of 200 epochs: the driver dies while the
    # fine-tunes are a few epochs in, after the pretrainings have their records. A resumable
    # state is saved at most once a second (stages.CHECKPOINT_MIN_S), so a fine-tune must last
    # several seconds for one past epoch 1 to be seen: 40 epochs took ~1 s on a fast VM, which
    # finished the grid before the kill.
    out = tmp_path / "out"
    sweep = train_sweep(tmp_path, heads=[1, 2], downstream=["digits"], pretrain_epochs=1,
                        finetune_epochs=200)
    first = run_grid(fresh, sweep, out)
    wait_until(lambda: result_files(out) and max(partial_epochs(out).values(), default=0) >= 3,
               "a record and a fine-tune 3 epochs in", driver=first)
    first.kill()
    wait_until(lambda: not fresh.workers(), "Ray to end the dead driver's trials", 120)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in result_files(out)}
    resumable = partial_epochs(out)
    assert before and resumable and not set(resumable) & {n.split(".")[0] for n in before}

    second = run_grid(fresh, sweep, out)          # the same command again
    seen = {tid: set() for tid in resumable}      # epochs in each partial checkpoint, as it runs
    while second.proc.poll() is None:
        for tid, epoch in partial_epochs(out).items():
            seen.setdefault(tid, set()).add(epoch)
        time.sleep(0.02)
    finish(second)
    ok_at_first_attempt(out, 4)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in result_files(out)}
    assert {name: after[name] for name in before} == before   # finished trials not re-run
    for tid, epoch in resumable.items():                      # resumed, never from epoch 1
        assert min(seen[tid]) >= epoch, (tid, epoch, sorted(seen[tid]))
    assert any(max(seen[tid]) > epoch for tid, epoch in resumable.items())
    assert not list((out / "checkpoints").glob("*.partial.pt"))
