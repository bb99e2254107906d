"""The hyper-parameter search (raysweep.hparams.search, raysweep.hparams.space) on the smoke sweep
cut to two sizes (1 head, and 2 heads distilled from it), on a real local Ray with real training:
values inside their spaces, an overlay that changes the grid's plan, a study that resumes, and the
validation of the `hparams` and `heads` sections."""

import argparse
import math
from pathlib import Path

import optuna
import pytest
import ray
import yaml

from raysweep.hparams import search as hparams
from raysweep.hparams import space as hparams_space
from raysweep.run import cluster, executor
from raysweep.sweep import plan, spec

ROOT = Path(__file__).parent.parent
SMOKE = str(ROOT / "sweeps" / "smoke.yaml")


def smoke(overrides: dict | None = None, **fields) -> spec.Sweep:
    """The two-size smoke sweep; `overrides` merge in as the grid's --overrides do, `fields`
    replace whole sections."""
    raw = yaml.safe_load(Path(SMOKE).read_text())
    # One candidate at a time: one Tune actor per size (its start, importing torch, dominates)
    raw.update(model={**raw["model"], "heads": [1, 2]}, teachers={2: [[1]]},
               hparams={**raw["hparams"], "concurrent": 1})
    return spec.parse(spec.merge({**raw, **fields}, overrides or {}), SMOKE)


def args(trials):
    return argparse.Namespace(sweep=SMOKE, out=None, address=None, overrides=None, data_root=None,
                              download=False, bootstrap=10, trials=trials, budget=None,
                              batch=None, tol=None)


def studies(out) -> dict[int, optuna.Study]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{out}/hparams/optuna.db")
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    return {int(n.split("-heads")[1].split("-")[0]): optuna.load_study(study_name=n,
                                                                       storage=storage)
            for n in names}


def finished(study):
    return [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                   optuna.trial.TrialState.PRUNED)]


@pytest.fixture(scope="module")
def searched(ray_local, tmp_path_factory):
    """One search of 2 candidates per size, shared by the tests below in file order (the resume
    test, last of them, adds a third)."""
    out = tmp_path_factory.mktemp("hparams")
    assert hparams.target(args(2), smoke(), str(out)) == 0
    return out


def test_search_writes_values_inside_their_spaces(searched):
    sweep = smoke()
    tuned = yaml.safe_load((searched / "hparams.yaml").read_text())["heads"]
    assert sorted(tuned) == [1, 2]
    for heads, values in tuned.items():
        space = hparams_space.space_for(sweep, heads)
        assert sorted(values) == sorted(space)  # distill.* for the 2-head student only
        for name, value in values.items():
            _, low, high = space[name]
            assert low <= value <= high, (heads, name, value)
    assert "distill.alpha" in tuned[2] and "distill.alpha" not in tuned[1]


def test_study_holds_every_candidate_with_its_epoch_curve(searched):
    found = studies(searched)
    assert sorted(found) == [1, 2]
    tuned = yaml.safe_load((searched / "hparams.yaml").read_text())["heads"]
    for heads, study in found.items():
        assert len(finished(study)) == 2
        best = study.best_trial
        assert 0 <= best.value <= 1
        # the overlay holds the best candidate's values, rounded to 4 digits
        for name, value in tuned[heads].items():
            assert math.isclose(value, best.params[name], rel_tol=1e-3)
        # one report per epoch: pretrain, fine-tune (and distil for the student)
        assert len(best.intermediate_values) >= 2 + (heads == 2)


def test_overlay_changes_the_grid_plan(searched):
    overlay = yaml.safe_load((searched / "hparams.yaml").read_text())
    before = {(t.stage, t.config["model"]["heads"]): t for t in plan.plan(smoke())}
    after = plan.plan(smoke(overlay))
    assert len(after) == len(plan.plan(smoke()))
    for t in after:
        heads = t.config["model"]["heads"]
        values = overlay["heads"][heads]
        assert t.trial_id not in {b.trial_id for b in before.values()}
        if t.stage == "pretrain":
            assert t.config["train"]["lr"] == values["pretrain.lr"]
        else:
            assert t.config["train"]["weight_decay"] == values["finetune.weight_decay"]
        if t.stage == "distill":
            assert t.config["distill"]["tau"] == values["distill.tau"]


def test_interrupted_search_resumes_its_study(searched):
    before = {h: {t.number: (t.params, t.value) for t in finished(study)}
              for h, study in studies(searched).items()}
    # What a killed search leaves: a candidate asked for and never told.
    studies(searched)[2].ask()
    assert hparams.target(args(3), smoke(), str(searched)) == 0
    after = studies(searched)
    for heads, study in after.items():
        assert len(finished(study)) == 3
        old = before[heads]
        assert {t.number: (t.params, t.value) for t in finished(study) if t.number in old} == old
    assert optuna.trial.TrialState.FAIL in [t.state for t in after[2].trials]


def test_asha_stopped_candidate_is_pruned_not_scored():
    space = {"finetune.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    search = hparams.ProxySearch(space, metric="error", mode="min")
    for tid in ("a", "b"):
        search.suggest(tid)
        search.on_trial_result(tid, {"error": 0.2, "training_iteration": 1})
    search.on_trial_complete("a", {"error": 0.2, "final": False, "training_iteration": 1})
    search.on_trial_complete("b", {"error": 0.5, "final": True, "training_iteration": 2})
    a, b = search._ot_study.trials
    assert a.state == optuna.trial.TrialState.PRUNED and a.intermediate_values == {1: 0.2}
    assert b.state == optuna.trial.TrialState.COMPLETE and b.value == 0.5


def test_shared_trials_are_the_teachers_and_the_stages_no_setting_reaches():
    sweep = smoke()
    teacher = {t.trial_id for t in hparams_space.trials_of(
        spec.proxy_sweep(sweep, {}), 1)}
    shared = hparams_space.shared_trials(sweep, {}, 2)
    assert {t.trial_id for t in shared} == teacher  # the 2-head student's own trials all vary
    space = {"finetune.lr": {"log": [1e-4, 1e-2]}}
    only_finetune = smoke(hparams={**sweep.hparams, "space": space})
    stages = {(t.stage, t.config["model"]["heads"])
              for t in hparams_space.shared_trials(only_finetune, {}, 2)}
    assert stages == {("pretrain", 1), ("finetune", 1), ("pretrain", 2)}


def test_target_without_hparams_section_exits_2(capsys):
    raw = yaml.safe_load(Path(SMOKE).read_text())
    del raw["hparams"]
    assert hparams.target(args(2), spec.parse(raw, "nohp.yaml"), "/nonexistent") == 2
    assert "nohp.yaml: hparams: no hparams section" in capsys.readouterr().err


BAD = [
    ({"space": {"finetune.learning_rate": {"log": [1e-4, 1e-2]}}},
     "hparams.space.finetune.learning_rate", "not a searchable setting"),
    ({"space": {"finetune.batch_size": {"uniform": [8, 64]}}},
     "hparams.space.finetune.batch_size", "not a searchable setting"),
    ({"space": {"finetune.epochs": {"uniform": [1, 3]}}}, "hparams.space.finetune.epochs",
     "not a searchable setting"),  # the proxy sets epochs
    ({"space": {"finetune.lr": {"log": [0.0, 1e-2]}}}, "hparams.space.finetune.lr.log", "0 < low"),
    ({"space": {"finetune.lr": {"uniform": [1e-2, 1e-3]}}},
     "hparams.space.finetune.lr.uniform", "low < high"),
    ({"space": {"finetune.lr": {"normal": [1e-3, 1e-4]}}}, "hparams.space.finetune.lr",
     "expected {log"),
    ({"space": {"finetune.lr": {"log": [1e-6, 1e-2]}}}, "hparams.space.finetune.lr",
     "warmup_lr"),  # below the warm-up's starting lr of 1e-5
    ({"space": {"finetune.warmup_epochs": {"uniform": [0.0, 1.0]}}},
     "hparams.space.finetune.warmup_epochs", "warmup_epochs"),  # not < the 1 proxy epoch
    ({"space": {"distill.alpha": {"uniform": [0.5, 1.5]}}}, "hparams.space.distill.alpha",
     "alpha"),
    ({"space": []}, "hparams.space", "expected a mapping"),
    ({"proxy": {"dp": 0.5}}, "hparams.proxy.df", "required"),
    ({"proxy": {"dp": 5000, "df": 0.2}}, "hparams.proxy.dp", "more than fractal"),
    ({"proxy": {"dp": 0.5, "df": 0.2, "epochs": {"finetune": -1}}},
     "hparams.proxy.epochs.finetune", "> 0"),
    ({"trials": 0}, "hparams.trials", ">= 1"),
    ({"sapce": {}}, "hparams.sapce", "unknown key"),
]


@pytest.mark.parametrize("bad,field,words", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_hparams_section_names_the_field(bad, field, words):
    raw = yaml.safe_load(Path(SMOKE).read_text())
    raw["hparams"] = {**raw["hparams"], **bad}
    with pytest.raises(spec.SweepError) as err:
        spec.parse(raw, "bad.yaml")
    assert err.value.field == field and words in str(err.value), str(err.value)


def test_proxy_shorter_than_the_grids_warm_up_names_the_proxy():
    raw = yaml.safe_load(Path(SMOKE).read_text())
    raw["train"]["finetune"]["warmup_epochs"] = 0.5  # fits the grid's 1 epoch
    raw["hparams"]["proxy"]["epochs"]["finetune"] = 0.4
    raw["hparams"]["space"].pop("finetune.warmup_epochs")
    with pytest.raises(spec.SweepError) as err:
        spec.parse(raw, "bad.yaml")
    assert err.value.field == "hparams.proxy" and "warmup_epochs" in str(err.value)


@pytest.mark.parametrize("heads,field", [
    ({5: {"finetune.lr": 1e-3}}, "heads.5"),
    ({2: {"finetune.learning_rate": 1e-3}}, "heads.2.finetune.learning_rate"),
    ({2: {"finetune.lr": "fast"}}, "heads.2.finetune.lr"),
    ({2: {"distill.alpha": 2.0}}, "heads.2.distill.alpha"),
    ({2: [1e-3]}, "heads.2"),
])
def test_bad_per_size_override_names_the_field(heads, field):
    with pytest.raises(spec.SweepError) as err:
        smoke({"heads": heads})
    assert err.value.field == field, str(err.value)


def test_per_size_override_reaches_only_its_size_and_distill_inherits_it():
    sweep = smoke({"heads": {2: {"finetune.lr": 3e-3}}})
    by = {(t.stage, t.config["model"]["heads"]): t for t in plan.plan(sweep)}
    base = {(t.stage, t.config["model"]["heads"]): t for t in plan.plan(smoke())}
    assert by["finetune", 2].config["train"]["lr"] == 3e-3
    assert by["distill", 2].config["train"]["lr"] == 3e-3
    assert by["finetune", 1].trial_id == base["finetune", 1].trial_id
    assert by["pretrain", 2].trial_id == base["pretrain", 2].trial_id


def test_progress_lines_survive_a_swapped_print(monkeypatch):
    # Ray's tqdm_ray swaps builtins.print while its bars are up, and Tune pickles the callbacks
    # that hold `echo`; a default of `print` itself then fails every search at Tuner(...).
    import builtins

    monkeypatch.setattr(builtins, "print", lambda *a, **k: None)
    callbacks = (hparams.Echo(1, 2, cluster.say),
                 executor.Progress({}, "out", cluster.say, set().__contains__))
    for echo in callbacks:
        assert ray.cloudpickle.loads(ray.cloudpickle.dumps(echo)).echo is cluster.say


def test_reports_of_a_trial_trained_for_steps_count_its_passes():
    """ASHA's budget is one report per epoch: a phase set by `steps` makes
    ceil(steps / ceil(images / batch)) of them, not `epochs` (TrainSettings' 300)."""
    sweep = smoke({"train": {"finetune": {"steps": 10, "batch_size": 4}}})
    trials = {t.stage: t for t in plan.plan(sweep)}
    df = trials["finetune"].config["df"]
    assert hparams_space.epochs_of(trials["finetune"]) == math.ceil(10 / math.ceil(df / 4))
    assert hparams_space.epochs_of(trials["pretrain"]) == 1   # epochs: 1, as before
