"""The trial DAG: counts, ids, prerequisites, and the --dry-run output."""

import json
from pathlib import Path

import pytest
import yaml

from raysweep import grid
from raysweep.sweep import plan, spec

ROOT = Path(__file__).parent.parent
SMOKE = ROOT / "sweeps" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke():
    return spec.load(SMOKE)


def test_counts_per_stage(smoke):
    trials = plan.plan(smoke)
    by = plan.summary(trials)["by_stage"]
    n_sizes, n_dp, n_df = len(smoke.model["heads"]), len(smoke.dp), len(smoke.df)
    assert by["pretrain"] == n_sizes * n_dp
    assert by["finetune"] == n_sizes * n_dp * n_df
    n_sets = sum(len(sets) for sets in smoke.teachers.values())
    assert by["distill"] == n_sets * n_dp * n_df
    assert len({t.trial_id for t in trials}) == len(trials)


def test_prerequisites_come_first_and_match(smoke):
    trials = plan.plan(smoke)
    index = {t.trial_id: i for i, t in enumerate(trials)}
    by_id = {t.trial_id: t for t in trials}
    for t in trials:
        for dep in t.depends_on:
            assert index[dep] < index[t.trial_id]
        c = t.config
        if t.stage == "finetune":
            (pre,) = t.depends_on
            assert by_id[pre].stage == "pretrain" and by_id[pre].config["dp"] == c["dp"]
            assert by_id[pre].config["model"]["heads"] == c["model"]["heads"]
        if t.stage == "distill":
            student, *teachers = [by_id[d] for d in t.depends_on]
            assert student.stage == "pretrain"
            assert [x.config["model"]["heads"] for x in teachers] == c["teachers"]
            for x in teachers:  # teachers pretrained on the same Dp, fine-tuned on the same Df
                assert (x.stage, x.config["dp"], x.config["df"]) == ("finetune", c["dp"], c["df"])
            assert t.teacher_params == pytest.approx(
                sum(x.params for x in teachers) / len(teachers))


def test_ids_are_content_hashes(smoke):
    a = {t.trial_id for t in plan.plan(smoke)}
    assert a == {t.trial_id for t in plan.plan(spec.load(SMOKE))}
    moved = spec.load(SMOKE, {"out": "/elsewhere"})        # where output goes: same ids
    assert a == {t.trial_id for t in plan.plan(moved)}
    retuned = spec.load(SMOKE, {"train": {"finetune": {"lr": 0.01}}})
    b = {t.trial_id: t.stage for t in plan.plan(retuned)}
    assert {i for i, s in b.items() if s == "pretrain"} <= a   # pretraining unchanged
    assert not {i for i, s in b.items() if s != "pretrain"} & a


def test_distill_stage_pretrain_depends_on_teacher_pretrains(smoke):
    raw = yaml.safe_load(SMOKE.read_text())
    raw["distill"]["stage"] = "pretrain"
    trials = plan.plan(spec.parse(raw))
    by_id = {t.trial_id: t for t in trials}
    for t in (t for t in trials if t.stage == "distill"):
        assert {by_id[d].stage for d in t.depends_on} == {"pretrain"}
        assert "pretrain" in t.config["train"] and "finetune" in t.config["train"]


@pytest.mark.parametrize("stage", ["finetune", "pretrain"])
def test_teachers_reused_from_one_dp_are_the_grid_s_own_trials(smoke, stage):
    raw = yaml.safe_load(SMOKE.read_text())
    raw["distill"].update(stage=stage, teacher_dp=1.0)   # all of the upstream set
    trials = plan.plan(spec.parse(raw))
    by_id = {t.trial_id: t for t in trials}
    full = max(t.config["dp"] for t in trials)
    distills = [t for t in trials if t.stage == "distill"]
    assert {t.config["dp"] for t in distills} == {t.config["dp"] for t in trials}
    for t in distills:
        teachers = [by_id[d] for d in t.config["teacher_trials"]]
        assert [x.config["dp"] for x in teachers] == [full] * len(teachers)
        assert {x.stage for x in teachers} == {stage}
        if stage == "finetune":
            assert all(x.config["df"] == t.config["df"] for x in teachers)
    # the teachers are plain trials the grid runs anyway: no trial is added, only reused
    raw["distill"].pop("teacher_dp")
    same_dp = plan.plan(spec.parse(raw))
    assert plan.summary(trials)["by_stage"] == plan.summary(same_dp)["by_stage"]
    smaller = {t.trial_id for t in distills if t.config["dp"] < full}
    at_full = {t.trial_id for t in distills if t.config["dp"] == full}
    assert smaller and not smaller & {t.trial_id for t in same_dp}
    assert at_full and at_full <= {t.trial_id for t in same_dp}   # the same experiment there


def test_dp_images_override_resolves_counts(smoke):
    trials = plan.plan(smoke, dp_images=[40, 77])
    assert {t.config["dp"] for t in trials} == {40, 77}


def test_dry_run_json(capsys):
    assert grid.main(["--sweep", str(SMOKE), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    keys = {"trial_id", "stage", "heads", "params", "dp", "df", "teacher_heads", "seed",
            "resources", "depends_on"}
    assert out["trials"] and all(keys <= set(t) for t in out["trials"])
    ids = {t["trial_id"] for t in out["trials"]}
    assert all(set(t["depends_on"]) <= ids for t in out["trials"])
    assert all(t["resources"] == {"GPU": 0.25, "CPU": 1} for t in out["trials"])


def test_dry_run_text_and_bad_sweep_exit_2(tmp_path, capsys):
    assert grid.main(["--sweep", str(SMOKE), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "pretrain" in text and "FLOPs" in text and "parameters" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("dp: [0.5, 1.0]", "dp: [0.5, 2.0]"))
    out = tmp_path / "out"
    assert grid.main(["--sweep", str(bad), "--out", str(out)]) == 2
    assert "dp[1]" in capsys.readouterr().err
    assert not out.exists()   # nothing written


def test_critical_first_starts_the_costliest_chains_and_keeps_prerequisites_first():
    # The default's grid, its steps written as epochs (100 x 512 images = 1,600 steps x 32), so
    # that a pretraining's cost grows with Dp (with the shipped steps every Dp costs the same).
    raw = yaml.safe_load((ROOT / "sweeps" / "default.yaml").read_text())
    raw["train"] = {"pretrain": {"epochs": 100, "batch_size": 32, "warmup_epochs": 10},
                    "finetune": {"epochs": 5, "batch_size": 32, "warmup_epochs": 0.5}}
    trials = plan.plan(spec.parse(raw))
    order = plan.critical_first(list(reversed(trials)))   # any input order
    assert sorted(t.trial_id for t in order) == sorted(t.trial_id for t in trials)
    pos = {t.trial_id: i for i, t in enumerate(order)}
    assert all(pos[d] < pos[t.trial_id] for t in trials for d in t.depends_on)
    # plan order starts at the smallest Dp; the longest chains hang off the largest Dp's biggest
    # models, and everything below a pretraining still has to wait for it
    assert trials[0].config["dp"] == 8
    assert [(t.stage, t.config["model"]["heads"], t.config["dp"]) for t in order[:2]] == [
        ("pretrain", 8, 512), ("pretrain", 8, 512)]   # seeds 0 and 1
    shipped = [t for t in plan.plan(spec.load(ROOT / "sweeps" / "default.yaml"))
               if t.stage == "pretrain" and t.config["model"]["heads"] == 8]
    cost = {t.config["dp"]: t.flops for t in shipped}   # a fixed step count: the same from
    assert sorted(cost) == [8, 32, 128, 512]              # Dp 32 (the batch) on; 8 images a step
    assert cost[32] == cost[128] == cost[512] == 4 * cost[8]   # at Dp 8


def test_flops_count_every_image_the_training_sees_in_epochs_or_in_steps():
    raw = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())
    by_epochs = plan.plan(spec.parse(raw))
    pre = next(t for t in by_epochs if t.stage == "pretrain")
    m = pre.config["model"]
    tokens = (m["image_size"] // m["patch_size"]) ** 2 + 1
    epochs = pre.config["train"]["epochs"]
    assert pre.flops == 6 * pre.params * tokens * epochs * pre.config["dp"]
    # steps replace epochs: steps x the batch, or x the whole subset when it is smaller
    raw["train"]["pretrain"] = {**raw["train"]["pretrain"], "steps": 7, "warmup_steps": 1}
    raw["train"]["pretrain"].pop("warmup_epochs", None)
    for t in plan.plan(spec.parse(raw)):
        if t.stage == "pretrain":
            batch = t.config["train"].get("batch_size", 128)
            assert t.flops == 6 * t.params * tokens * 7 * min(batch, t.config["dp"])
    distill = next(t for t in by_epochs if t.stage == "distill")   # teachers' forwards on top
    assert distill.flops > next(t for t in by_epochs if t.stage == "finetune"
                                and t.config["dp"] == distill.config["dp"]
                                and t.params == distill.params
                                and t.config["df"] == distill.config["df"]).flops
