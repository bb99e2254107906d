"""A trial's id names its resolved config (docs/design.md §1): a default written explicitly
changes no id, a changed default changes the ids of the trials it reaches, what decides nothing
is not hashed, and a record of the earlier scheme is filed under its id of this one."""

import dataclasses
import hashlib

import legacy_ids
import pytest

from raysweep import cli, data
from raysweep.sweep import fields, identity, plan, spec
from raysweep.train import settings, shape

SMOKE = cli.sweep_path("smoke")


def ids(overrides: dict | None = None, sweep: str = "smoke") -> dict[str, str]:
    """trial id -> stage of a shipped sweep's plan."""
    return {t.trial_id: t.stage for t in plan.plan(spec.load(cli.sweep_path(sweep), overrides))}


def test_the_issue_s_example_an_explicit_default_weight_decay_keeps_every_id():
    assert ids({"train": {"finetune": {"weight_decay": 0.05}}}, "default") == ids(None, "default")


TRAIN_FIELDS = [f for f in dataclasses.fields(settings.TrainSettings)
                if f.name not in identity.NOT_HASHED["train"]]


@pytest.mark.parametrize("field", [f for f in TRAIN_FIELDS if f.default is not None],
                         ids=lambda f: f.name)   # a sweep cannot write None (steps: unset)
@pytest.mark.parametrize("stage", ["pretrain", "finetune", "distill"])
def test_every_training_setting_written_at_its_default_keeps_every_id(field, stage):
    default = field.default
    if field.name == "flip":        # the flip a stage gets is its dataset's (digits: none)
        default = stage == "pretrain"
    if field.name in fields.STAGE_DEFAULTS["finetune"]:   # Table 3's row is the default there
        default = fields.STAGE_DEFAULTS["pretrain" if stage == "pretrain" else "finetune"][
            field.name]
    if field.name in ("epochs", "warmup_epochs", "batch_size"):
        default = spec.load(SMOKE).train[stage][field.name]   # the sweep's own value
    if isinstance(default, float) and default == int(default):
        default = int(default)      # as YAML reads `epochs: 1`: an int must hash as the float
    assert ids({"train": {stage: {field.name: default}}}) == ids()


# TrainSettings field -> a changed default (the value TrainSettings, Table 3 or the dataset
# would fill in); every field must be here, so a new one is tested when it is added.
CHANGED = {"epochs": 301.0, "steps": 7, "batch_size": 16, "lr": 1e-3, "warmup_lr": 2e-5,
           "warmup_epochs": 6.0, "warmup_steps": 1, "min_lr": 0.0, "weight_decay": 0.1,
           "label_smoothing": 0.1, "pad": 2, "flip": True}


def test_the_table_of_changed_defaults_covers_every_hashed_training_setting():
    assert sorted(CHANGED) == sorted(f.name for f in TRAIN_FIELDS)


def changed_defaults(monkeypatch, name: str, value) -> None:
    """Change the default of training setting NAME to VALUE where it comes from."""
    if name == "flip":
        info = data.DATASETS["digits"]
        monkeypatch.setitem(data.DATASETS, "digits", dataclasses.replace(info, flip=value))
        return
    real = settings.TrainSettings
    monkeypatch.setattr(identity, "TrainSettings", lambda **given: real(**{name: value, **given}))


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_a_changed_training_default_reaches_the_ids_of_the_trials_that_take_it(
        monkeypatch, name):
    # a sweep that leaves NAME to the defaults (Table 3 rows and smoke's settings removed)
    monkeypatch.setattr(fields, "STAGE_DEFAULTS", {"pretrain": {}, "finetune": {}})
    raw = {k: v for k, v in spec.load(SMOKE).raw.items() if k not in ("train", "hparams")}
    base = {t.trial_id: t.stage for t in plan.plan(spec.parse(raw))}
    changed_defaults(monkeypatch, name, CHANGED[name])
    after = {t.trial_id: t.stage for t in plan.plan(spec.parse(raw))}
    assert len(after) == len(base)
    touched = {"flip": {"finetune", "distill"}}.get(name, {"pretrain", "finetune", "distill"})
    assert not {i for i, s in after.items() if s in touched} & set(base)
    assert {i for i, s in after.items() if s not in touched} <= set(base)


@pytest.mark.parametrize("key", sorted(dataclasses.asdict(settings.DistillSettings())))
def test_distillation_settings_explicit_or_default_and_a_changed_default(monkeypatch, key):
    value = getattr(settings.DistillSettings(), key)
    assert ids({"distill": {key: value}}) == ids()
    base = ids()
    real = settings.DistillSettings
    monkeypatch.setattr(identity, "DistillSettings",
                        lambda **g: real(**{**g, key: value / 2 if value else 0.5}))
    after = ids()
    assert {i for i, s in after.items() if s == "distill"}.isdisjoint(base)
    assert {i for i, s in after.items() if s != "distill"} <= set(base)


@pytest.mark.parametrize("key", [k for k in shape.DEIT_PAPER if k != "heads"])
def test_the_model_shape_default_reaches_every_id(monkeypatch, key):
    """A sweep that leaves a shape key out takes DeiT's; that default is hashed."""
    raw = spec.load(SMOKE).raw
    model = {k: v for k, v in raw["model"].items() if k != key}
    if key == "patch_size":
        model["image_size"] = 32    # divisible by DeiT's 16 px patch and by twice that
    base = {t.trial_id for t in plan.plan(spec.parse({**raw, "model": model}))}
    explicit = {**model, key: shape.DEIT_PAPER[key]}
    assert base == {t.trial_id for t in plan.plan(spec.parse({**raw, "model": explicit}))}
    bumped = {**shape.DEIT_PAPER, key: shape.DEIT_PAPER[key] * 2}
    monkeypatch.setattr(fields, "DEIT_PAPER", bumped)
    assert base.isdisjoint(t.trial_id for t in plan.plan(spec.parse({**raw, "model": model})))


@pytest.mark.parametrize("key", sorted(data.DATASETS["fractal"].defaults))
def test_a_dataset_param_default_reaches_the_ids(monkeypatch, key):
    raw = spec.load(SMOKE).raw
    up = raw["upstream"]
    default = data.DATASETS["fractal"].defaults[key]
    explicit = {**raw, "upstream": {**up, "params": {key: default, **up["params"]}}}
    assert ids() == {t.trial_id: t.stage for t in plan.plan(spec.parse(explicit))}
    if key in up["params"]:
        return      # smoke sets it: its default reaches nothing
    base = set(ids())
    info = data.DATASETS["fractal"]
    new = {**info.defaults, key: 1 if default is None else default + 1}
    monkeypatch.setitem(data.DATASETS, "fractal", dataclasses.replace(info, defaults=new))
    assert base.isdisjoint(ids())       # every trial reads the upstream set's params


def test_what_decides_nothing_is_kept_in_the_config_but_not_hashed():
    (t, *_) = plan.plan(spec.load(SMOKE))
    c = t.config
    assert "eval_batch_size" in c["train"]
    assert identity.trial_id({**c, "train": {**c["train"], "eval_batch_size": 7}}) == t.trial_id
    sim = plan.plan(spec.load(cli.sweep_path("simulate"), {"simulate": {"hold_s": 0.5}}))
    assert {x.trial_id for x in sim} == set(ids(None, "simulate"))
    assert sim[0].config["simulate"]["hold_s"] == 0.5     # still reaches the trial


def test_a_field_added_later_at_its_neutral_value_hashes_as_if_absent(monkeypatch):
    (t, *_) = plan.plan(spec.load(SMOKE))
    monkeypatch.setitem(identity.ADDED, "train", {"grad_clip": 0.0})
    c = t.config
    assert identity.trial_id({**c, "train": {**c["train"], "grad_clip": 0.0}}) == t.trial_id
    assert identity.trial_id({**c, "train": {**c["train"], "grad_clip": 1.0}}) != t.trial_id


def test_resolving_is_idempotent_and_the_config_says_its_scheme():
    for t in plan.plan(spec.load(SMOKE)):
        assert t.config["id_scheme"] == identity.SCHEME
        assert identity.resolve(t.config) == t.config


def test_rekey_files_every_scheme_1_record_under_the_id_the_planner_gives_it():
    sweep = spec.load(SMOKE)
    old = legacy_ids.legacy_trials(sweep)
    mapped = identity.rekey({old_id: config for old_id, config in old.values()})
    assert {o: new for o, (new, _) in mapped.items()} == {o: now for now, (o, _) in old.items()}
    by_id = {t.trial_id: t for t in plan.plan(sweep)}
    assert all(by_id[new].config == config for new, config in mapped.values())
    orphans = {o: c for o, c in old.values() if c["stage"] != "pretrain"}
    assert identity.rekey(orphans) == {}     # without their pretrainings none has an id


@pytest.mark.parametrize("name, digest", [
    ("smoke", "e53ba710a5675edb"), ("default", "e483d8124c2fb460"),
    ("simulate", "e6dbfeaecd21a3ae"),
])
def test_the_scheme_1_ids_rebuilt_for_these_tests_are_the_ones_scheme_1_gave(name, digest):
    """The digests scheme 1's planner pinned for the shipped sweeps: the legacy records these
    tests write are the ones an OUT of then holds."""
    old = sorted(o for o, _ in legacy_ids.legacy_trials(spec.load(cli.sweep_path(name))).values())
    assert hashlib.sha256(" ".join(old).encode()).hexdigest()[:16] == digest
