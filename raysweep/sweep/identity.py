"""A trial's identity: its config resolved down to every default, and the hash of that.

A trial's id must name exactly what decides its result (docs/design.md §1), so the config is
resolved before it is hashed: every training setting TrainSettings would fill in at run time
(epochs, min_lr, weight decay, warm-up, label smoothing, the dataset's flip, ...), every field of
DistillSettings, the dataset's params with the registry's defaults, numbers of float settings
as floats. So writing a default explicitly changes no id, and changing a default in code changes
the ids of the trials it reaches. The resolved config is also what the trial runs: nothing is
filled in later.

Not hashed, though kept in the config, are the settings that decide nothing of a result:
`eval_batch_size` (how many test images one forward evaluates) and the simulator's `hold_s`
(how long a simulated trial holds its resources). Nor is the code that runs it: that is the
record's provenance (raysweep.store.provenance), so a comment edit re-runs nothing.

Fields added after this scheme (ADDED) are hashed only when their value differs from the one
that reproduces the code before them, so adding a knob does not re-id a study. A change of what
is hashed is a new SCHEME: records carry the scheme of their ids (the `id_scheme` column), and
`rekey` files a record of an earlier scheme under its id of this one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from raysweep import data
from raysweep.train.settings import DistillSettings, TrainSettings

# 1: the config as the planner wrote it (defaults filled at run time, unhashed). 2: resolved.
SCHEME = 2
LEGACY_SCHEME = 1   # what a record without an `id_scheme` column was written under
NOT_HASHED = {"train": ("eval_batch_size",), "simulate": ("hold_s",)}
# section -> {field: the value that behaves as the code did before the field existed}. Empty:
# no field has been added since SCHEME 2.
ADDED: dict[str, dict[str, object]] = {"train": {}, "distill": {}, "model": {}}
DATASET_KEYS = ("upstream", "downstream")


def resolve(config: dict) -> dict:
    """CONFIG (a planned trial's, or a record's of any scheme) with every default filled in and
    float settings as floats; its `id_scheme` is SCHEME."""
    c = {k: v for k, v in config.items()}
    for key in DATASET_KEYS:
        if c.get(key):
            c[key] = {"name": c[key]["name"],
                      "params": data.params_of(c[key]["name"], c[key].get("params"))}
    if "train" in c:
        c["train"] = resolved_train(c)
    if "distill" in c:
        given = {k: v for k, v in c["distill"].items() if k != "stage"}
        c["distill"] = {"stage": c["distill"].get("stage", "finetune"),
                        **settings_dict(DistillSettings(**given))}
    if c.get("simulate") is not None:
        c["simulate"] = as_floats({"noise": 0.0, "hold_s": 0.0, **c["simulate"]})
    return {**c, "id_scheme": SCHEME}


def resolved_train(c: dict) -> dict:
    """The `train` section as TrainSettings fills it: one stage's settings, or a two-phase
    distillation's {"pretrain": ..., "finetune": ...}. The flip default is the dataset's (a
    mirrored digit is no longer that digit: raysweep.data)."""
    train = c["train"]
    if c.get("stage") == "distill" and "pretrain" in train and "finetune" in train:
        return {"pretrain": train_settings(train["pretrain"], c["upstream"]),
                "finetune": train_settings(train["finetune"], c["downstream"])}
    dataset = c["upstream"] if c.get("stage") == "pretrain" else c.get("downstream")
    return train_settings(train, dataset or c["upstream"])


def train_settings(given: dict, dataset: dict) -> dict:
    flip = data.DATASETS[dataset["name"]].flip
    return settings_dict(TrainSettings(**{"flip": flip, **given}))


def settings_dict(settings) -> dict:
    """A settings dataclass as a dict; float fields as floats (YAML's `epochs: 300` is an int)."""
    return {f.name: float(v) if f.type == "float" else v
            for f in dataclasses.fields(settings) for v in [getattr(settings, f.name)]}


def as_floats(value):
    """Numbers of a simulate section (laws' E, coef, exponent; noise) as floats."""
    if isinstance(value, dict):
        return {k: as_floats(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def hashed(config: dict) -> dict:
    """The part of a resolved config that names the trial: all of it but NOT_HASHED and fields
    of ADDED at their neutral values."""
    c = dict(config)
    for section in ("train", "distill", "model", "simulate"):
        if isinstance(c.get(section), dict):
            c[section] = strip(section, c[section])
    return c


def strip(section: str, values: dict) -> dict:
    if section == "train" and "pretrain" in values and "finetune" in values:
        return {phase: strip(section, v) for phase, v in values.items()}
    added = ADDED.get(section, {})
    return {k: v for k, v in values.items() if k not in NOT_HASHED.get(section, ())
            and not (k in added and v == added[k])}


def trial_id(config: dict) -> str:
    """16 hex digits of the sha256 of hashed(CONFIG) as compact JSON with sorted keys."""
    blob = json.dumps(hashed(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def rekey(configs: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """Records of an earlier scheme, {old id: config as recorded} -> {old id: (id, config) under
    this scheme}: each config resolved with this code's defaults, its prerequisites' ids
    (`pretrained`, `teacher_trials`) replaced by theirs. A record whose prerequisite is not among
    CONFIGS has no id here and is left out."""
    out: dict[str, tuple[str, dict]] = {}
    for stage in ("pretrain", "finetune", "distill"):   # prerequisites first
        for old, config in configs.items():
            if config.get("stage") != stage:
                continue
            c = dict(config)
            deps = [c.get("pretrained")] if c.get("pretrained") else []
            deps += list(c.get("teacher_trials") or [])
            if any(d not in out for d in deps):
                continue
            if c.get("pretrained"):
                c["pretrained"] = out[c["pretrained"]][0]
            if c.get("teacher_trials"):
                c["teacher_trials"] = [out[d][0] for d in c["teacher_trials"]]
            new = resolve(c)
            out[old] = (trial_id(new), new)
    return out
