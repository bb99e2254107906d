"""The checks of a sweep file's fields, one function a field: each takes the raw YAML value and
returns it normalised, or raises a `SweepError` naming the file, the field path (`teachers.8[1]`)
and what was expected. raysweep.sweep.spec composes them into the whole file.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

from raysweep import data
from raysweep.errors import InputError
from raysweep.laws.study import candidate_forms
from raysweep.train.settings import TABLE3, DistillSettings
from raysweep.train.shape import DEIT_PAPER

GPU_FRACTIONS = (0.125, 0.25, 0.5, 1.0)  # fractions that divide one GPU evenly (docs/design.md §3)
DISTILL_STAGES = ("finetune", "pretrain")

# Training settings a stage may set; units beside each. Values default to the paper's Table 3.
TRAIN_KEYS = {
    "epochs": float,          # passes over the stage's training subset
    "steps": int,             # optimiser steps in all; when set, it replaces epochs
    "batch_size": int,        # images per optimiser step
    "lr": float,              # peak learning rate (AdamW)
    "warmup_lr": float,       # learning rate at step 0, rising linearly to lr
    "warmup_epochs": float,   # length of the linear warm-up, in epochs
    "warmup_steps": int,      # ... in optimiser steps; when set, it replaces warmup_epochs
    "min_lr": float,          # end of the cosine decay
    "weight_decay": float,    # AdamW decoupled weight decay
    "label_smoothing": float,
    "pad": int,               # random-crop padding, pixels
    "flip": bool,             # random horizontal flip
}
DISTILL_KEYS = ("alpha", "tau", "attention_weight")  # eq. 3 weights a model size may override
# Settings one model size may override (`heads:`) or a search may tune (`hparams.space`), by
# "stage.key": every stage's training settings, and eq. 3's weights as `distill.alpha` etc.
SETTINGS = {**{f"{stage}.{key}": kind for stage in ("pretrain", "finetune", "distill")
               for key, kind in TRAIN_KEYS.items()},
            **{f"distill.{key}": float for key in DISTILL_KEYS}}
# Where a sweep's stages start: the paper's Table 3 rows (train.settings.TABLE3).
STAGE_DEFAULTS = {"pretrain": TABLE3["pretrain-imagenet"],
                  "finetune": TABLE3["finetune-tinyimagenet"]}

DATASET_KEYS = {"name": str, "params": None, "finetune": TRAIN_KEYS}



class SweepError(InputError):
    """A sweep file that cannot run; the message names the file and the field."""

    def __init__(self, file: str, field: str, message: str):
        super().__init__(f"{file}: {field}: {message}")
        self.file, self.field, self.message = file, field, message


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    params: dict
    finetune: dict  # per-dataset overrides of train.finetune (e.g. the paper's batch 16 on CIFAR)


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def check_keys(mapping: dict, table: dict, file: str, path: str) -> None:
    for key in mapping:
        if key not in table:
            where = f"{path}.{key}" if path else str(key)
            known = ", ".join(sorted(table))
            raise SweepError(file, where, f"unknown key; expected one of: {known}")


def check(value: Any, kind: Any, file: str, path: str) -> None:
    """Check `value` against a FIELDS entry: a type, a nested table, a one-item list, or a tag."""
    if kind is None or kind == "dataset":
        return
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            raise SweepError(file, path, f"expected a mapping, got {type(value).__name__}")
        check_keys(value, kind, file, path)
        for key, item in value.items():
            check(item, kind[key], file, f"{path}.{key}" if path else key)
    elif isinstance(kind, list):
        if not isinstance(value, list):
            raise SweepError(file, path, f"expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            check(item, kind[0], file, f"{path}[{i}]")
    elif kind == "amount":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SweepError(file, path, f"expected a fraction in (0, 1] or an image count, "
                                         f"got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise SweepError(file, path, f"expected a number, got {value!r}")
    elif isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise SweepError(file, path, f"expected {kind.__name__}, got {value!r}")


def dataset_spec(value: Any, file: str, path: str) -> DatasetSpec:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise SweepError(file, path, "expected a dataset name or a mapping with a 'name'")
    check(value, DATASET_KEYS, file, path)
    if value["name"] not in data.dataset_names():
        raise SweepError(file, f"{path}.name", f"unknown dataset {value['name']!r}; "
                                               f"expected one of {data.dataset_names()}")
    return DatasetSpec(value["name"], dict(value.get("params") or {}),
                       dict(value.get("finetune") or {}))


def model_spec(model: dict, file: str) -> dict:
    spec = {**{k: v for k, v in DEIT_PAPER.items() if k != "heads"}, **model}
    if not spec.get("heads"):
        raise SweepError(file, "model.heads", "expected a non-empty list of head counts")
    for key, value in spec.items():
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            if v < 1:
                where = f"model.{key}[{i}]" if isinstance(value, list) else f"model.{key}"
                raise SweepError(file, where, f"expected a positive integer, got {v}")
    if spec["image_size"] % spec["patch_size"]:
        raise SweepError(file, "model.image_size",
                         f"{spec['image_size']} px is not a multiple of patch_size "
                         f"{spec['patch_size']}")
    spec["heads"] = sorted(set(spec["heads"]))
    return spec


def amounts(values: list, file: str, field: str, datasets) -> tuple:
    if not values:
        raise SweepError(file, field, "expected at least one amount")
    for i, value in enumerate(values):
        amount(value, file, f"{field}[{i}]", datasets)
    return tuple(sorted(set(values)))


def amount(value, file: str, where: str, datasets) -> None:
    """VALUE is a fraction in (0, 1] or an image count that every one of DATASETS holds."""
    if isinstance(value, float) or value == 1:
        if not 0 < value <= 1:
            raise SweepError(file, where, f"fraction {value} is outside (0, 1]")
        return
    if value < 1:
        raise SweepError(file, where, f"image count {value} must be >= 1")
    for d in datasets:
        size = data.train_size(d.name, d.params)
        if value > size:
            raise SweepError(file, where, f"{value} images is more than {d.name}'s "
                                          f"{size} training images")


def teacher_sets(raw: dict, heads: list[int], file: str) -> dict:
    if not isinstance(raw, dict):
        raise SweepError(file, "teachers", "expected a mapping student heads -> list of teacher "
                                           "sets, e.g. {4: [[2]], 6: [[2, 4]]}")
    out = {}
    for student, sets in raw.items():
        path = f"teachers.{student}"
        if not isinstance(student, int) or student not in heads:
            raise SweepError(file, path, f"student {student!r} is not one of model.heads {heads}")
        if not isinstance(sets, list) or not sets:
            raise SweepError(file, path, "expected a list of teacher sets, e.g. [[2], [2, 4]]")
        norm = []
        for i, group in enumerate(sets):
            group = group if isinstance(group, list) else [group]
            for j, teacher in enumerate(group):
                where = f"{path}[{i}][{j}]" if len(group) > 1 else f"{path}[{i}]"
                if isinstance(teacher, bool) or not isinstance(teacher, int) or teacher < 1:
                    raise SweepError(file, where, f"expected a head count, got {teacher!r}")
                if teacher >= student:
                    raise SweepError(file, where, f"teacher with {teacher} heads is not smaller "
                                                  f"than its {student}-head student")
            norm.append(tuple(sorted(set(group))))
        out[student] = tuple(dict.fromkeys(norm))
    return out


def distill_spec(raw: dict, file: str, where: str = "distill") -> dict:
    spec = {"stage": "finetune", **dataclasses.asdict(DistillSettings()), **raw}
    if spec["stage"] not in DISTILL_STAGES:
        raise SweepError(file, f"{where}.stage", f"unknown stage {spec['stage']!r}; expected one "
                                                 f"of {DISTILL_STAGES}")
    if not 0 <= spec["alpha"] <= 1:
        raise SweepError(file, f"{where}.alpha", f"expected a weight in [0, 1], "
                                                 f"got {spec['alpha']}")
    if spec["tau"] <= 0 or spec["attention_weight"] < 0:
        raise SweepError(file, where, "expected tau > 0 and attention_weight >= 0")
    return spec


def train_spec(raw: dict) -> dict[str, dict]:
    pretrain = {**STAGE_DEFAULTS["pretrain"], **raw.get("pretrain", {})}
    finetune = {**STAGE_DEFAULTS["finetune"], **raw.get("finetune", {})}
    return {"pretrain": pretrain, "finetune": finetune,
            "distill": {**finetune, **raw.get("distill", {})}}


def size_settings(raw: dict, heads: list[int], file: str) -> dict[int, dict]:
    """`heads: {4: {finetune.lr: 1.0e-3, distill.alpha: 0.3}}` (per model size overrides, as the
    hyper-parameter search writes them) -> {4: {"train": ..., "distill": ...}}, resolved like the
    top-level `train` and `distill` (so distill still inherits a size's fine-tuning settings)."""
    sizes = raw.get("heads") or {}
    if not isinstance(sizes, dict):
        raise SweepError(file, "heads", "expected a mapping head count -> {stage.setting: value}")
    out = {}
    for h, values in sizes.items():
        path = f"heads.{h}"
        if h not in heads:
            raise SweepError(file, path, f"expected one of model.heads {heads}")
        if not isinstance(values, dict):
            raise SweepError(file, path, "expected a mapping stage.setting -> value, e.g. "
                                         "{finetune.lr: 1.0e-3}")
        train_over: dict[str, dict] = {}
        distill_over = {}
        for name, value in values.items():
            check_keys({name: value}, SETTINGS, file, path)
            check(value, SETTINGS[name], file, f"{path}.{name}")
            stage, key = name.split(".")
            if key in DISTILL_KEYS:
                distill_over[key] = value
            else:
                train_over.setdefault(stage, {})[key] = value
        out[h] = {"train": train_spec(merge(raw.get("train") or {}, train_over)),
                  "distill": distill_spec({**(raw.get("distill") or {}), **distill_over}, file,
                                          f"{path}.distill")}
    return out


def resources(raw: dict, heads: list[int], file: str) -> dict[int, dict[str, float]]:
    """Per head count: {"GPU": fraction, "CPU": threads}; key `default` applies to the rest."""
    out = {}
    for key, value in raw.items():
        path = f"resources.{key}"
        if key != "default" and key not in heads:
            raise SweepError(file, path, f"expected 'default' or one of model.heads {heads}")
        if not isinstance(value, dict) or set(value) - {"gpu", "cpu"}:
            raise SweepError(file, path, "expected a mapping with keys gpu and/or cpu")
        gpu, cpu = value.get("gpu", 0), value.get("cpu", 1)
        if gpu and float(gpu) not in GPU_FRACTIONS:
            raise SweepError(file, f"{path}.gpu", f"GPU fraction {gpu} does not divide 1 evenly; "
                                                  f"expected one of {GPU_FRACTIONS}")
        if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 1:
            raise SweepError(file, f"{path}.cpu", f"expected a whole number of CPUs >= 1, "
                                                  f"got {cpu!r}")
        out[key] = {"GPU": float(Fraction(gpu)), "CPU": cpu}
    default = out.pop("default", {"GPU": 0.0, "CPU": 1})
    return {h: out.get(h, default) for h in heads}


def law_candidates(value: Any, file: str) -> dict[str, dict[str, str]]:
    """A sweep's `laws:` section: {law: {form name: expression}}, each expression parsed (the
    catalogue's laws, laws.form's language); the paper's forms are fitted beside them anyway."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise SweepError(file, "laws", "expected {law: {form name: expression}}, e.g. "
                                       "{error: {dp_x_df: 'E + A * df**k / dp**a + ...'}}")
    for law, forms in value.items():
        for name, expression in forms.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise SweepError(file, f"laws.{law}", f"form name {name!r}: expected a word")
            if not isinstance(expression, str):
                raise SweepError(file, f"laws.{law}.{name}", f"expected an expression string, "
                                                             f"got {expression!r}")
            try:
                candidate_forms({law: {name: expression}})
            except InputError as err:
                raise SweepError(file, f"laws.{law}.{name}", str(err)) from None
    return {law: dict(forms) for law, forms in value.items()}

