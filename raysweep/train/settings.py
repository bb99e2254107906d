"""Settings of the training loop, checked on construction, with the paper's Table 3 as a table,
and the learning-rate schedule (a pure function of the step, so the step number is the whole
scheduler state and a resumed run needs nothing else).

Every field is type-checked as well as range-checked: settings arrive from YAML and JSON, where
`1e-5` can be a string and `3.0` a batch size, and a wrong type must stop the trial with the
field's name, not surface as a TypeError deep in the loop.

Left out: DeiT's other knobs (gradient clipping, EMA, mixup/cutmix, stochastic depth); see
loop.py.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass


def _require(ok: bool, name: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"train setting {name} must be {expected}, got {value!r}")


def _fits(annotation: str, value: object) -> bool:
    """Does `value` fit a field annotated "float", "int", "bool" or "int | None"? A bool is no
    number here, nor a number a bool; and PyYAML reads `lr: 1e-5` (no dot) as a *string*."""
    if value is None:
        return annotation.endswith("| None")
    if annotation == "bool" or isinstance(value, bool):
        return annotation == "bool" and isinstance(value, bool)
    return isinstance(value, numbers.Integral if annotation.startswith("int") else numbers.Real)


def _check_types(settings: object, prefix: str = "") -> None:
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        _require(_fits(f.type, value), prefix + f.name, f"of type {f.type}", value)


@dataclass(frozen=True)
class TrainSettings:
    """Defaults: the paper's Table 3 fine-tuning row for TinyImageNet / ImageNet100; where Table 3
    is silent, DeiT's main.py defaults (facebookresearch/deit), which Table 3's values match."""

    epochs: float = 300.0          # passes over the training subset; fractional allowed (DeiT 300)
    steps: int | None = None       # optimizer steps in total; when set, it replaces epochs
    batch_size: int = 128          # images per step (Table 3; 16 for CIFAR)
    lr: float = 5e-4               # peak learning rate of AdamW (Table 3)
    warmup_lr: float = 1e-5        # learning rate at step 0, rising linearly to lr (Table 3)
    warmup_epochs: float = 5.0     # length of the linear warm-up, in epochs (DeiT)
    warmup_steps: int | None = None  # ... in optimizer steps; when set, it replaces warmup_epochs
    min_lr: float = 1e-5           # learning rate at the last step, end of the cosine (DeiT)
    weight_decay: float = 0.05     # AdamW decoupled decay on matrices only (DeiT / timm)
    label_smoothing: float = 0.0   # 0: test cross-entropy (eq. 2) is fitted, smoothing floors it
    pad: int = 4                   # random-crop padding in pixels (CIFAR convention)
    flip: bool = True              # random horizontal flip, p = 0.5
    eval_batch_size: int = 512     # images per evaluation forward

    def __post_init__(self) -> None:
        _check_types(self)
        _require(self.epochs > 0, "epochs", "> 0", self.epochs)
        _require(self.steps is None or self.steps >= 1, "steps", ">= 1 (or None)", self.steps)
        _require(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        _require(self.eval_batch_size >= 1, "eval_batch_size", ">= 1", self.eval_batch_size)
        _require(self.lr > 0, "lr", "> 0", self.lr)
        _require(0 < self.warmup_lr <= self.lr, "warmup_lr", f"in (0, lr = {self.lr}]",
                 self.warmup_lr)
        _require(0 <= self.min_lr <= self.lr, "min_lr", f"in [0, lr = {self.lr}]", self.min_lr)
        _require(0 <= self.warmup_epochs < (self.epochs if self.steps is None else math.inf),
                 "warmup_epochs", f"in [0, epochs = {self.epochs})", self.warmup_epochs)
        _require(self.warmup_steps is None or 0 <= self.warmup_steps < (self.steps or math.inf),
                 "warmup_steps", f"in [0, steps = {self.steps})", self.warmup_steps)
        _require(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        _require(0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)",
                 self.label_smoothing)
        _require(self.pad >= 0, "pad", ">= 0 pixels", self.pad)


# Table 3 of the paper (AdamW), one row per stage and dataset: the settings it states; the rest of
# a row is TrainSettings' defaults. A sweep's stages start from the pretraining row and the
# TinyImageNet fine-tuning row (raysweep.sweep.spec), written into every trial's config.
TABLE3: dict[str, dict] = {
    "pretrain-imagenet": {"batch_size": 128, "lr": 5e-4, "warmup_lr": 1e-6},
    "finetune-tinyimagenet": {"batch_size": 128, "lr": 5e-4, "warmup_lr": 1e-5},
    "finetune-imagenet100": {"batch_size": 128, "lr": 5e-4, "warmup_lr": 1e-5},
    "finetune-cifar100": {"batch_size": 16, "lr": 5e-4, "warmup_lr": 1e-5},
    "finetune-cifar10": {"batch_size": 16, "lr": 5e-4, "warmup_lr": 1e-5},
}


@dataclass(frozen=True)
class DistillSettings:
    """Eq. 3's weights and the attention alignment of sec. 3.3; the defaults are a sweep's."""

    alpha: float = 0.5             # eq. 3 weight of the label cross-entropy, in [0, 1]
    tau: float = 2.0               # eq. 3 softmax temperature, > 0
    attention_weight: float = 1.0  # weight of the attention-map KL; 0: no maps, fused attention

    def __post_init__(self) -> None:
        _check_types(self, "distill ")
        _require(0 <= self.alpha <= 1, "distill alpha", "in [0, 1]", self.alpha)
        _require(self.tau > 0, "distill tau", "> 0", self.tau)
        _require(self.attention_weight >= 0, "distill attention_weight", ">= 0",
                 self.attention_weight)


def learning_rate(step: int, total_steps: int, warmup_steps: int,
                  settings: TrainSettings) -> float:
    """warmup_lr at step 0, linear to lr at `warmup_steps`, cosine down to min_lr at the last
    step (total_steps - 1)."""
    if step < warmup_steps:
        return settings.warmup_lr + (settings.lr - settings.warmup_lr) * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return settings.min_lr + (settings.lr - settings.min_lr) * cosine
