"""The executor on a real local Ray (fake GPUs): packing, no stage barriers, resume, failures."""

from pathlib import Path

import pytest
import yaml
from ray import cloudpickle

from raysweep.run import cluster, executor, track
from raysweep.run.trial import Context
from raysweep.store import results
from raysweep.sweep import plan, spec
from raysweep.sweep.fields import GPU_FRACTIONS

ROOT = Path(__file__).parent.parent
SIM = yaml.safe_load((ROOT / "sweeps" / "simulate.yaml").read_text())


def sim_sweep(**changes):
    raw = {**SIM, **changes}
    raw["simulate"] = {**SIM["simulate"], **changes.get("simulate", {})}
    return spec.parse(raw)


def intervals(out):
    table = results.read(str(out)).to_pylist()
    return [(r["started_at"].timestamp(), r["finished_at"].timestamp(), r) for r in table]


def max_overlap(spans):
    events = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    return peak


def test_simulated_grid_records_every_trial_once_and_resumes(ray_local, tmp_path):
    sweep = sim_sweep(dp=[0.05, 0.25, 1.0], df=[1.0])
    trials = plan.plan(sweep)
    lines = []
    ran = executor.run(trials, Context(str(tmp_path)), name="t", echo=lines.append)
    table = results.read(str(tmp_path))
    assert ran == len(trials) == table.num_rows
    assert set(table["trial_id"].to_pylist()) == {t.trial_id for t in trials}
    assert set(table["status"].to_pylist()) == {"ok"}
    assert len(lines) == len(trials) and "left]" in lines[-1] and "error=" in lines[-1]
    files = sorted((tmp_path / "results").iterdir())
    assert len(files) == len(trials)
    assert executor.run(trials, Context(str(tmp_path)), name="t", echo=lines.append) == 0
    assert sorted((tmp_path / "results").iterdir()) == files


def test_eight_quarter_gpu_trials_run_at_once_and_never_more(ray_local, tmp_path):
    # 8 sizes x 1 Dp: 8 independent pretrainings of 0.25 GPU on 2 fake GPUs (16 fake CPUs, so the
    # GPUs are what binds). Each holds its slot 10 s: longer than eight workers take to start on a
    # loaded 2-core machine, so "all at once" is what the scheduler allows, not a race.
    sweep = sim_sweep(model={**SIM["model"], "heads": list(range(1, 9)), "depth": 1},
                      dp=[1.0], df=[1.0], teachers={},
                      resources={"default": {"gpu": 0.25, "cpu": 1}},
                      simulate={"hold_s": 10.0})
    trials = [t for t in plan.plan(sweep) if t.stage == "pretrain"]
    assert len(trials) == 8
    executor.run(trials, Context(str(tmp_path)), name="pack", echo=lambda _: None)
    spans = intervals(tmp_path)
    assert max_overlap(spans) == 8
    first_end = min(e for _, e, _ in spans)
    assert max(s for s, _, _ in spans) < first_end   # all eight started before any finished


def test_half_gpu_trials_pack_four_at_a_time(ray_local, tmp_path):
    sweep = sim_sweep(model={**SIM["model"], "heads": list(range(1, 7)), "depth": 1},
                      dp=[1.0], df=[1.0], teachers={},
                      resources={"default": {"gpu": 0.5, "cpu": 1}},
                      simulate={"hold_s": 8.0})
    trials = plan.plan(sweep)
    executor.run(trials, Context(str(tmp_path)), name="bar", echo=lambda _: None)
    spans = intervals(tmp_path)
    assert max_overlap(spans) == 4
    # No stage barrier: a fine-tune starts while some pretraining is still running.
    last_pretrain_end = max(e for _, e, r in spans if r["stage"] == "pretrain")
    first_finetune_start = min(s for s, _, r in spans if r["stage"] == "finetune")
    assert first_finetune_start < last_pretrain_end


def test_diverged_trial_is_recorded_and_the_grid_goes_on(ray_local, tmp_path):
    # A plain law whose error exceeds 1 at the smallest Dp: those trials diverge, the rest are ok.
    law = {"E": 0.05, "terms": {"dp": {"coef": 3000.0, "exponent": 0.6}}}
    sweep = sim_sweep(dp=[0.05, 1.0], df=[1.0], teachers={}, model={**SIM["model"], "heads": [2]},
                      simulate={"plain": law})
    executor.run(plan.plan(sweep), Context(str(tmp_path)), name="div", echo=lambda _: None)
    rows = results.read(str(tmp_path)).to_pylist()
    by = {(r["stage"], r["dp"]): r for r in rows}
    assert len(rows) == 4
    assert by[("pretrain", 65000)]["status"] == "diverged"
    assert "outside (0, 1)" in by[("pretrain", 65000)]["message"]
    # its fine-tune cannot run: recorded failed, naming the prerequisite; the rest goes on
    assert by[("finetune", 65000)]["status"] == "failed"
    assert by[("pretrain", 65000)]["trial_id"] in by[("finetune", 65000)]["message"]
    assert by[("pretrain", 1300000)]["status"] == by[("finetune", 1300000)]["status"] == "ok"


@pytest.mark.parametrize("stage", ["pretrain"])
def test_searcher_orders_by_prerequisites(stage):
    sweep = sim_sweep(dp=[1.0], df=[1.0])
    trials = plan.plan(sweep)
    skipped = []
    s = executor.ReadySearcher(trials, set(), lambda t, why: skipped.append((t, why)))
    first = [s.suggest(str(i)) for i in range(len(trials))]
    ready = [x for x in first if isinstance(x, dict)]
    assert {x["stage"] for x in ready} == {stage}   # only pretraining is ready at first
    # fail one pretraining (its code failed past its retries: the trainable reports `failed`): its
    # dependants are skipped with the reason, the others proceed
    victim = next(k for k, t in s.running.items() if t.config["model"]["heads"] == 2)
    s.on_trial_complete(victim, result={"status": "failed"})
    for k in list(s.running):
        s.on_trial_complete(k, result={"status": "ok"})
    s.suggest("next")
    reasons = {why for _, why in skipped}
    assert skipped and all("did not finish ok" in why for why in reasons)
    dead = {t.trial_id for t, _ in skipped}
    assert all(t.config["model"]["heads"] == 2 or 2 in t.config.get("teachers", [])
               for t in trials if t.trial_id in dead)


def test_what_tune_unpickles_per_trial_start_does_not_carry_the_grid(ray_local):
    # Tune unpickles the registered trainable for every trial it starts: with the grid's trials
    # inside it, each start cost time in proportion to the grid, and a grid the square of its size.
    trials = plan.plan(sim_sweep(seeds=list(range(8))))
    context = {"out": "/tmp/x", "download": False, "data_root": None, "eval_every": 1}
    one, grid = ({t.trial_id: t for t in trials[:k]} for k in (1, len(trials)))
    blobs = [cloudpickle.dumps(executor.tune_trainable(by_id, context, retries=2))
             for by_id in (one, grid)]
    assert len(grid) == 8 * 175
    assert abs(len(blobs[1]) - len(blobs[0])) < 64
    assert not any(t.trial_id.encode() in blobs[1] for t in trials)


@pytest.mark.parametrize("gpu", GPU_FRACTIONS)
def test_a_trials_request_is_read_from_its_labels(gpu):
    sweep = sim_sweep(resources={"default": {"gpu": gpu, "cpu": 3}, 2: {"cpu": 2}})
    for t in plan.plan(sweep):
        bundle = cluster.request(track.labels(t)).bundles
        assert bundle == cluster.resources_for(t.resources).bundles
        assert bundle == ([{"CPU": 2}] if t.config["model"]["heads"] == 2
                          else [{"CPU": 3, "GPU": float(gpu)}])


def test_a_worker_process_deserializes_a_grid_once(ray_local):
    # A reused worker runs many trials: unpickling every planned trial at each start made a
    # trial's start cost time in proportion to the grid.
    import ray
    trials = plan.plan(sim_sweep(dp=[1.0], df=[1.0]))
    ref = ray.put({t.trial_id: t for t in trials})
    first = executor.grid(ref)
    assert executor.grid(ref) is first
    assert set(first) == {t.trial_id for t in trials}
    assert executor.grid(ray.put({})) == {} and ref not in executor._GRID
