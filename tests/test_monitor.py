"""Per-epoch reports: what training computes is untouched by them, Tune's logs hold one row per
epoch, and --track logs one run per trial to MLflow (local file store) and W&B (offline mode)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from raysweep.run import executor, track
from raysweep.run import trial as trial_mod
from raysweep.store import results
from raysweep.sweep import plan, spec

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())
EPOCHS = 3


def small_sweep(**monitor):
    """One pretraining and its fine-tune, 3 epochs each (smoke's tiny model and data)."""
    raw = {**SMOKE, "model": {**SMOKE["model"], "heads": [1]}, "dp": [1.0], "df": [0.2],
           "teachers": {}, "train": {s: {**v, "epochs": EPOCHS} for s, v in SMOKE["train"].items()},
           "monitor": monitor}
    raw.pop("hparams")
    return spec.parse(raw)


def test_per_epoch_evaluation_leaves_the_result_bit_for_bit(tmp_path):
    trials = plan.plan(small_sweep())
    runs = {}
    for watched in (False, True):
        out, rows = str(tmp_path / f"watched{watched}"), []
        ctx = trial_mod.Context(out, on_epoch=(lambda t, m, rows=rows: rows.append(m))
                                if watched else None, report_every_s=0)
        records = [trial_mod.run(t, ctx) for t in trials]
        weights = torch.load(Path(out) / "checkpoints" / f"{trials[-1].trial_id}.pt",
                             weights_only=True)
        runs[watched] = ([(r["status"], r["error"], r["loss"]) for r in records], weights, rows)
    (plain, w0, none), (watched, w1, rows) = runs[False], runs[True]
    assert plain == watched and all(status == "ok" for status, _, _ in plain)
    assert all(torch.equal(w0[k], w1[k]) for k in w0) and not none
    for t, record in zip(trials, watched):
        mine = [r for r in rows if r["stage"] == t.stage]
        assert [r["epoch"] for r in mine] == list(range(1, EPOCHS + 1))
        assert all(0 <= r["test_error"] <= 1 and r["lr"] > 0 and r["images_per_s"] > 0
                   for r in mine)
        assert (mine[-1]["test_error"], mine[-1]["test_loss"]) == record[1:]


def test_eval_every_sets_which_epochs_evaluate(tmp_path):
    t = plan.plan(small_sweep())[0]
    for every, evaluated in ((0, [EPOCHS]), (2, [2, EPOCHS])):
        rows = []
        ctx = trial_mod.Context(str(tmp_path / str(every)), eval_every=every,
                                on_epoch=lambda _, m, rows=rows: rows.append(m), report_every_s=0)
        trial_mod.run(t, ctx)
        assert [r["epoch"] for r in rows if "test_error" in r] == evaluated


def test_reports_come_at_most_every_report_every_s_but_never_skip_an_evaluation_or_the_end(
        tmp_path):
    t = plan.plan(small_sweep())[0]
    for every, reported in ((0, [1, EPOCHS]), (2, [1, 2, EPOCHS])):
        rows = []
        ctx = trial_mod.Context(str(tmp_path / str(every)), eval_every=every, report_every_s=1e9,
                                on_epoch=lambda _, m, rows=rows: rows.append(m))
        trial_mod.run(t, ctx)
        assert [r["epoch"] for r in rows] == reported


@pytest.fixture(scope="module")
def tracked_grid(ray_local, tmp_path_factory):
    """The small grid run once through Tune with --track mlflow against a local file store."""
    out = tmp_path_factory.mktemp("tracked")
    sweep = small_sweep()
    trials = plan.plan(sweep)
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"file:{out / 'mlruns'}")
        # MLflow 3 keeps its file store for those who ask: the one backend needing no server
        # nor database (mlflow-skinny, the extra, has no SQL store)
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        executor.run(trials, trial_mod.Context(str(out), report_every_s=0), name=sweep.name,
                     echo=lines.append, tracker=track.tracker("mlflow", "watched"))
    return out, trials, lines


def tune_rows(out: Path) -> dict[str, list[dict]]:
    """Trial id -> the rows of Tune's result.json in its trial directory."""
    found = {}
    for f in out.glob("tune/*/*/result.json"):
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        found[rows[0]["config"]["raysweep_trial_id"]] = rows
    return found


def test_tune_logs_hold_one_row_per_epoch_named_for_a_person(tracked_grid):
    out, trials, lines = tracked_grid
    rows = tune_rows(out)
    records = {r["trial_id"]: r for r in results.read(str(out)).to_pylist()}
    assert set(rows) == {t.trial_id for t in trials}
    for t in trials:
        mine = rows[t.trial_id]
        assert len(mine) == EPOCHS
        assert [r["epoch"] for r in mine] == list(range(1, EPOCHS + 1))
        steps = [r["steps"] for r in mine]
        assert steps == sorted(set(steps)) and steps[-1] == mine[-1]["total_steps"]
        assert all(math.isfinite(r["train_loss"]) for r in mine)
        assert [r["final"] for r in mine] == [False] * (EPOCHS - 1) + [True]
        assert (mine[-1]["error"], mine[-1]["loss"]) == (records[t.trial_id]["error"],
                                                         records[t.trial_id]["loss"])
    names = sorted(p.name for p in out.glob("tune/*/*") if p.is_dir())
    assert names[0].startswith("finetune_h1_dp128_df")
    assert names[1].startswith("pretrain_h1_dp128_s0_")
    assert len(lines) == len(trials)   # one progress line per finished trial, not per report


def test_mlflow_holds_one_run_per_trial_with_its_parameters_and_result(tracked_grid,
                                                                      monkeypatch):
    from mlflow.tracking import MlflowClient

    out, trials, _ = tracked_grid
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=f"file:{out / 'mlruns'}")
    experiment = client.get_experiment_by_name("watched")
    runs = client.search_runs([experiment.experiment_id])
    records = {r["trial_id"]: r for r in results.read(str(out)).to_pylist()}
    assert len(runs) == len(trials)
    for run in runs:
        p = run.data.params
        record = records[p["raysweep_trial_id"]]
        assert {k: p[k] for k in ("stage", "heads", "dp", "seed", "params")} == {
            "stage": record["stage"], "heads": str(record["heads"]), "dp": str(record["dp"]),
            "seed": str(record["seed"]), "params": str(record["params"])}
        assert p["code_version"] == record["code_version"]
        assert run.data.metrics["error"] == record["error"]
        assert run.data.metrics["loss"] == record["loss"]
        assert run.data.tags["stage"] == record["stage"] and run.data.tags["sweep"] == "smoke"
        curve = client.get_metric_history(run.info.run_id, "train_loss")
        assert len(curve) == EPOCHS


def test_wandb_offline_writes_one_run_directory_per_trial(ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = small_sweep()
    trials = plan.plan(sweep)
    executor.run(trials, trial_mod.Context(str(tmp_path)), name=sweep.name, echo=lambda _: None,
                 tracker=track.tracker("wandb", "watched"))
    runs = sorted(tmp_path.glob("tune/*/*/wandb/offline-run-*"))
    assert len(runs) == len(trials) == len({r.parent.parent for r in runs})
    for t in trials:
        (run,) = [r for r in runs if r.parent.parent.name.startswith(f"{t.stage}_")]
        # the run's own transaction log, whole once the command returns: its start, every
        # epoch's report, and the exit record that wandb.finish writes last (a run whose
        # logging actor was killed before W&B wrote it out was a bare header)
        records = wandb_records(next(run.glob("run-*.wandb")))
        kinds = [r.WhichOneof("record_type") for r in records]
        assert kinds.count("run") >= 1 and kinds.count("history") == EPOCHS, kinds
        assert "exit" in kinds, kinds
        history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
        assert [h.step.num for h in history] == list(range(1, EPOCHS + 1))
        # wandb.init logs the run's config in its debug log as it starts the run
        config = next(line for line in (run / "logs" / "debug.log").read_text().splitlines()
                      if line.startswith("config: "))
        for key, value in track.labels(t).items():
            assert f"'{key}': {value!r}" in config, (key, config)


def wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (run-*.wandb): a 7-byte header (":W&B", magic
    0xBEE1, version 0), then LevelDB's log format -- blocks of 32 KiB of records, each a CRC (4
    bytes), a length (2, little-endian) and a type (1: whole, 2/3/4: first/middle/last part)
    before its bytes -- each a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, block, part, records = 7, 32 * 1024, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:          # a block's tail too short for a header: padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            records.append(record)
            part = b""
    return records


def test_track_wandb_without_the_extra_exits_2_with_the_pip_command(tmp_path):
    # sys.modules[name] = None makes `import wandb` raise ImportError: W&B as if not installed
    code = ("import sys; sys.modules['wandb'] = None; from raysweep import grid; "
            f"sys.exit(grid.main(['--sweep', 'smoke', '--track', 'wandb', '--out', "
            f"{str(tmp_path)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 2, run.stderr
    assert "pip install 'raysweep[wandb]'" in run.stderr
    assert not (tmp_path / "results").exists()   # nothing ran
