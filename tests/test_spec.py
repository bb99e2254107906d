"""Sweep validation: every shipped sweep loads; every kind of bad input names file and field."""

from pathlib import Path

import pytest
import yaml

from raysweep.sweep import spec

SWEEPS = sorted((Path(__file__).parent.parent / "sweeps").glob("*.yaml"))
SMOKE = Path(__file__).parent.parent / "sweeps" / "smoke.yaml"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweeps_validate_and_open_with_their_command(path):
    sweep = spec.load(path)
    assert sweep.name and sweep.model["heads"]
    header = path.read_text().splitlines()[:6]
    text = "\n".join(header).lower()
    assert all(line.startswith("#") for line in header[:3])
    for word in ("command", "runtime", "outcome"):
        assert word in text, f"{path.name} must open with its {word}"


def write(tmp_path, edit):
    raw = yaml.safe_load(SMOKE.read_text())
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BAD = {
    "unknown top-level key": (lambda r: r.update(epochz=3), "epochz", "unknown key"),
    "unknown nested key": (lambda r: r["train"]["pretrain"].update(lrr=1), "train.pretrain.lrr",
                           "unknown key"),
    "wrong type": (lambda r: r["model"].update(depth="deep"), "model.depth", "expected int"),
    "fraction above 1": (lambda r: r.update(dp=[0.5, 1.5]), "dp[1]", "outside (0, 1]"),
    "zero fraction": (lambda r: r.update(df=[0.0]), "df[0]", "outside (0, 1]"),
    "count above dataset": (lambda r: r.update(df=[5000]), "df[0]", "more than digits"),
    "warm-up longer than training": (
        lambda r: r["train"]["finetune"].update(warmup_epochs=2), "train.finetune",
        "warmup_epochs must be in [0, epochs = 1)"),
    "steps not a whole number": (lambda r: r["train"]["finetune"].update(steps=2.5),
                                 "train.finetune.steps", "expected int"),
    "warm-up steps not shorter than steps": (
        lambda r: r["train"]["finetune"].update(steps=10, warmup_steps=10), "train.finetune",
        "warmup_steps must be in [0, steps = 10)"),
    "teacher not smaller": (lambda r: r.update(teachers={3: [[1, 3]]}), "teachers.3[0][1]",
                            "not smaller"),
    "teacher of unknown student": (lambda r: r.update(teachers={5: [[1]]}), "teachers.5",
                                   "not one of model.heads"),
    "unknown dataset": (lambda r: r.update(downstream=["mnist"]), "downstream[0].name",
                        "unknown dataset 'mnist'"),
    "gpu fraction": (lambda r: r["resources"].update(default={"gpu": 0.3, "cpu": 1}),
                     "resources.default.gpu", "does not divide 1"),
    "missing field": (lambda r: r.pop("dp"), "dp", "required"),
    "distill stage": (lambda r: r.update(distill={"stage": "never"}), "distill.stage",
                      "unknown stage"),
    "teacher Dp above upstream": (lambda r: r["distill"].update(teacher_dp=10 ** 6),
                                  "distill.teacher_dp", "more than fractal"),
    "teacher Dp not an amount": (lambda r: r["distill"].update(teacher_dp="all"),
                                 "distill.teacher_dp", "expected a fraction in (0, 1]"),
    "bad backend": (lambda r: r.update(backend="magic"), "backend", "unknown backend"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweeps_name_file_and_field(tmp_path, case):
    edit, field, words = BAD[case]
    path = write(tmp_path, edit)
    with pytest.raises(spec.SweepError) as info:
        spec.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}:"), message
    assert words in message


def test_teacher_field_path_matches_the_issue_example(tmp_path):
    path = write(tmp_path, lambda r: (r["model"].update(heads=[2, 4, 8]),
                                      r.update(teachers={8: [[2, 8]]})))
    with pytest.raises(spec.SweepError, match=r"teachers\.8\[0\]\[1\]: teacher with 8 heads"):
        spec.load(path)


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(spec.SweepError, match="not valid YAML"):
        spec.load(bad)
    with pytest.raises(spec.SweepError, match="no such sweep file"):
        spec.load(tmp_path / "missing.yaml")


def test_overrides_merge_deeply():
    sweep = spec.load(SMOKE, {"train": {"finetune": {"lr": 0.01}}})
    assert sweep.train["finetune"]["lr"] == 0.01
    assert sweep.train["finetune"]["batch_size"] == 32  # siblings kept
    assert sweep.train["distill"]["lr"] == 0.01         # distill inherits finetune


def test_resources_default_and_per_size():
    sweep = spec.parse({**yaml.safe_load(SMOKE.read_text()),
                        "resources": {"default": {"gpu": 0.25, "cpu": 1},
                                      3: {"gpu": 0.5, "cpu": 2}}})
    assert sweep.resources[1] == {"GPU": 0.25, "CPU": 1}
    assert sweep.resources[3] == {"GPU": 0.5, "CPU": 2}


def test_steps_reach_each_trial_config_and_size_overrides(tmp_path):
    def edit(r):
        r["train"]["finetune"].update(steps=40, warmup_steps=4)
        r["heads"] = {2: {"pretrain.steps": 7}}
    sweep = spec.load(write(tmp_path, edit))
    assert sweep.train["finetune"]["steps"] == 40 and sweep.train["distill"]["warmup_steps"] == 4
    assert sweep.settings_for(2)["train"]["pretrain"]["steps"] == 7
    assert "steps" not in sweep.settings_for(1)["train"]["pretrain"]   # epochs stay in charge
