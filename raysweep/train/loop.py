"""The one training loop of the three stages (pretrain, fine-tune, distil): AdamW, linear warm-up
then cosine decay per step, batches gathered by index from uint8 tensors (train/batches.py: host
images, mapped from the node's split cache, reach the device a batch at a time), tensor
augmentation on the device.

Read `train` top to bottom: plan the steps, build the optimizer, maybe resume, then for each epoch
draw a permutation, and for each batch augment, forward, loss, backward, step. Distillation adds
frozen teachers (eq. 3) and, when `attention_weight > 0`, attention-map alignment (sec. 3.3); only
then do the models leave fused attention (see models.attention_maps).

Determinism: every random draw (batch order, crops, flips) comes from one torch.Generator seeded
with `seed` and living on the model's device; model initialisation is the caller's (trial.run
builds models under torch.manual_seed of the trial's seed). A run resumed from an `on_epoch`
state reproduces the uninterrupted run on the same device (tests/test_train.py checks bit-equal
weights on the CPU).

Left out, and why: gradient clipping, EMA weights, mixup/cutmix and stochastic depth of DeiT's
ImageNet recipe (the paper's Table 3 names optimizer, batch size, lr and warm-up lr only; every
extra knob would have to be swept or recorded); gradient accumulation and multi-GPU data
parallelism (models of at most 38.8M parameters at batch 128 fit one GPU, and the sweep packs
several trials per GPU instead); a scheduler object (the learning rate is a pure function of the
step, `settings.learning_rate`, so the step number is the whole scheduler state).

The settings and the paper's Table 3 live in train/settings.py; TrainSettings and DistillSettings
are re-exported here, so callers write `train.TrainSettings`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from typing import BinaryIO

import torch
import torch.nn.functional as F
from torch import nn

from raysweep.train.augment import augment, to_float
from raysweep.train.batches import Batches
from raysweep.train.losses import attention_loss, distillation_loss
from raysweep.train.models import attention_maps, count_params
from raysweep.train.settings import DistillSettings, TrainSettings, learning_rate

# Non-finite losses are looked for every this many steps (and at each epoch end): checking every
# step would synchronise the GPU each step; a diverged run wastes at most 24 steps.
_CHECK_EVERY_STEPS = 25

# bf16 autocast on CUDA only: CPU autocast is slower than float32 for these small models.
_AUTOCAST: dict[str, Callable[[], object]] = {
    "cuda": lambda: torch.autocast("cuda", dtype=torch.bfloat16),
}


@dataclass
class TrainResult:
    status: str                    # "ok" | "diverged"
    error: float | None            # top-1 error on the test split, in [0, 1]; None if diverged
    loss: float | None             # mean cross-entropy on the test split (nats); None if diverged
    steps: int                     # optimizer steps done in total (resumed ones included)
    images_per_s: float            # training images per second of this call (evaluation excluded)
    message: str | None = None     # why it diverged, e.g. "loss became nan at step 37"


@dataclass(frozen=True)
class _Plan:
    steps_per_epoch: int           # ceil(n_train / batch_size): the last batch may be smaller
    total_steps: int               # settings.steps, else round(epochs x steps_per_epoch) >= 1
    warmup_steps: int              # settings.warmup_steps, else round(warmup_epochs x per epoch)


def _plan(n_train: int, settings: TrainSettings) -> _Plan:
    per_epoch = math.ceil(n_train / settings.batch_size)
    total = settings.steps or max(1, round(settings.epochs * per_epoch))
    warmup = settings.warmup_steps
    if warmup is None:
        warmup = round(settings.warmup_epochs * per_epoch)
    return _Plan(per_epoch, total, min(warmup, total - 1))


def _optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW; as in DeiT (timm), vectors (norms, biases) and position/class embeddings get no
    weight decay."""
    skip = set(getattr(model, "no_weight_decay", set)())
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in params if p.ndim <= 1 or n in skip]
    decay = [p for n, p in params if not (p.ndim <= 1 or n in skip)]
    groups = [{"params": decay, "weight_decay": settings.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel on both devices torch has one for: on the CPU too it is faster than the
    # foreach one on the default's models (BENCHMARKS.md, "Trials: the step").
    fused = next(model.parameters()).device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=settings.warmup_lr, fused=fused or None)


def _check_split(name: str, images: torch.Tensor, labels: torch.Tensor, device) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"{name} images must be uint8 (N, C, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    if labels.dtype != torch.int64 or labels.shape != images.shape[:1] or len(labels) == 0:
        raise ValueError(f"{name} labels must be int64 (N,) with N = {len(images)} >= 1, got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if images.device not in (device, torch.device("cpu")) or labels.device != images.device:
        raise ValueError(f"{name} split is on {images.device}/{labels.device}, the model on "
                         f"{device}: put them on the host or on the model's device")


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
             batch_size: int = 512) -> tuple[float, float]:
    """(top-1 error in [0, 1], mean cross-entropy in nats) over the whole split, no augmentation;
    the split may be on the host (each batch is copied to the model's device). The model's
    train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    wrong, ce_sum = torch.zeros((), device=device), torch.zeros((), device=device)
    with torch.no_grad(), _AUTOCAST.get(device.type, nullcontext)():
        for start in range(0, len(images), batch_size):
            logits = model(to_float(images[start:start + batch_size].to(device))).float()
            target = labels[start:start + batch_size].to(device)
            wrong += (logits.argmax(-1) != target).sum()
            ce_sum += F.cross_entropy(logits, target, reduction="sum")
    model.train(was_training)
    return wrong.item() / len(images), ce_sum.item() / len(images)


def _loss_fn(model: nn.Module, teachers: Sequence[nn.Module], distill: DistillSettings | None,
             settings: TrainSettings, stack: ExitStack) -> Callable:
    """The per-batch loss: CE alone, or eq. 3 (+ attention KL). Enters attention_maps contexts on
    `stack` only when the attention term is on."""
    if not teachers:
        return lambda x, y: F.cross_entropy(model(x), y, label_smoothing=settings.label_smoothing)
    use_maps = distill.attention_weight > 0
    student_maps = stack.enter_context(attention_maps(model)) if use_maps else None
    teacher_maps = [stack.enter_context(attention_maps(t)) for t in teachers] if use_maps else []

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        with torch.no_grad():
            teacher_logits = [teacher(x) for teacher in teachers]
        value = distillation_loss(logits, teacher_logits, y, alpha=distill.alpha, tau=distill.tau,
                                  label_smoothing=settings.label_smoothing)
        if use_maps:
            aligned = attention_loss(list(student_maps), [list(m) for m in teacher_maps])
            value = value + distill.attention_weight * aligned
        return value
    return loss


def _first_bad_step(losses: torch.Tensor, first_step: int) -> str | None:
    bad = ~torch.isfinite(losses)
    if not bad.any():
        return None
    index = int(bad.nonzero()[0, 0])
    return f"loss became {losses[index].item()} at step {first_step + index}"


def _state(model, optimizer, generator, epoch: int, step: int, plan: _Plan, losses,
           images_per_s: float) -> dict:
    # lr: the rate of the epoch's last step; images_per_s: this epoch's training alone
    metrics = {"train_loss": losses.mean().item(), "steps_per_epoch": plan.steps_per_epoch,
               "lr": optimizer.param_groups[0]["lr"], "images_per_s": images_per_s}
    return {"epoch": epoch, "step": step, "total_steps": plan.total_steps,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(), "metrics": metrics}


def _resume(state: dict, model, optimizer, generator, plan: _Plan) -> tuple[int, int]:
    if state["total_steps"] != plan.total_steps:
        raise ValueError(f"start_state comes from a run of {state['total_steps']} steps, this run "
                         f"has {plan.total_steps}: same data size and settings are needed")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return state["epoch"], state["step"]


def _prepare(model, teachers, distill, device) -> None:
    """Refuse a bad student/teacher set before touching anything; then student in train mode,
    teachers frozen in eval mode."""
    if bool(teachers) != (distill is not None):
        raise ValueError(f"distillation needs both teachers and DistillSettings, got "
                         f"{len(teachers)} teachers and distill={distill}")
    student_params = count_params(model)
    for i, teacher in enumerate(teachers):
        where = next(teacher.parameters()).device
        if where != device:
            raise ValueError(f"teacher {i} is on {where}, the student on {device}: put them on "
                             f"the same device")
        if count_params(teacher) >= student_params:
            raise ValueError(f"teacher {i} has {count_params(teacher):,} parameters, the student "
                             f"{student_params:,}: distillation here is small-to-large (sec. "
                             f"3.3), so every teacher must be smaller than its student")
    model.train()
    for teacher in teachers:
        teacher.eval().requires_grad_(False)


def _rate(images: int, started: float, device: torch.device) -> float:
    """Images per second since `started`, after the GPU has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images / max(time.perf_counter() - started, 1e-9)


def _epoch(loss_fn: Callable, optimizer, generator, data: Batches, plan: _Plan,
           settings: TrainSettings, step: int) -> tuple[torch.Tensor, str | None, int]:
    """One pass (or the final part of one) from global step `step`: (per-step losses, divergence
    message or None, images seen). Stops at the first check that finds a non-finite loss."""
    device = data.device
    data.epoch(torch.randperm(len(data), generator=generator, device=device))
    steps = min(plan.steps_per_epoch, plan.total_steps - step)
    losses, seen = torch.empty(steps, device=device), 0
    for k in range(steps):
        images, labels = data.get(k * settings.batch_size, (k + 1) * settings.batch_size)
        x = augment(images, pad=settings.pad, flip=settings.flip, generator=generator)
        lr = learning_rate(step + k, plan.total_steps, plan.warmup_steps, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with _AUTOCAST.get(device.type, nullcontext)():
            loss = loss_fn(x, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[k], seen = loss.detach(), seen + len(labels)
        if (k + 1) % _CHECK_EVERY_STEPS == 0 or k + 1 == steps:
            message = _first_bad_step(losses[:k + 1], step)
            if message:
                return losses[:k + 1], message, seen
    return losses, None, seen


def train(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
          test_images: torch.Tensor, test_labels: torch.Tensor, settings: TrainSettings, *,
          seed: int, teachers: Sequence[nn.Module] = (), distill: DistillSettings | None = None,
          on_epoch: Callable[[int, dict], None] | None = None,
          start_state: dict | None = None, index: torch.Tensor | None = None) -> TrainResult:
    """Train `model` on the uint8 split (or on its rows `index`: a subset without a copy), then
    evaluate it on the test split. Splits may be on the host or on the model's device.

    Each teacher must have fewer parameters than the student (small-to-large; a ValueError before
    anything changes otherwise); teachers are then put in eval mode and frozen (requires_grad
    False) in place. `on_epoch(epoch, state)` is called after each epoch (epoch = epochs done,
    from 1): `state` holds the model, optimizer and generator states, epoch, step, total_steps and
    metrics (mean train loss, the last step's learning rate, the epoch's training images per
    second) -- it references live tensors, so serialise it (`save_checkpoint`)
    before returning. Passing it back as `start_state` resumes after that epoch. A non-finite
    loss ends the run as "diverged".
    """
    device = next(model.parameters()).device
    _check_split("train", train_images, train_labels, device)
    _check_split("test", test_images, test_labels, device)
    _prepare(model, teachers, distill, device)
    data = Batches(train_images, train_labels, index, device)
    plan = _plan(len(data), settings)
    optimizer = _optimizer(model, settings)
    generator = torch.Generator(device=device).manual_seed(seed)
    epoch, step = _resume(start_state, model, optimizer, generator, plan) if start_state else (0, 0)
    # `started` moves forward by the time spent in on_epoch (checkpoints, evaluations), so
    # images_per_s counts training alone
    seen, started = 0, time.perf_counter()
    with ExitStack() as stack:
        loss_fn = _loss_fn(model, teachers, distill, settings, stack)
        while step < plan.total_steps:
            epoch_started = time.perf_counter()
            losses, message, n_images = _epoch(loss_fn, optimizer, generator, data, plan,
                                               settings, step)
            step, seen = step + len(losses), seen + n_images
            if message:
                return TrainResult("diverged", None, None, step, _rate(seen, started, device),
                                   message)
            epoch += 1
            if on_epoch is not None:
                rate = _rate(n_images, epoch_started, device)
                hook_started = time.perf_counter()
                on_epoch(epoch, _state(model, optimizer, generator, epoch, step, plan, losses,
                                       rate))
                started += time.perf_counter() - hook_started
    images_per_s = _rate(seen, started, device)
    error, test_loss = evaluate(model, test_images, test_labels,
                                batch_size=settings.eval_batch_size)
    return TrainResult("ok", error, test_loss, step, images_per_s)


def save_checkpoint(state: dict, f: BinaryIO) -> None:
    """Write an `on_epoch` state (tensors, numbers, strings, lists, dicts only) to a binary file
    object; where the bytes go (file, object storage) is the caller's business."""
    torch.save(state, f)


def load_checkpoint(f: BinaryIO) -> dict:
    """Read a state written by `save_checkpoint`, onto the CPU. weights_only=True: only tensors
    and plain containers are rebuilt, never arbitrary pickled objects."""
    return torch.load(f, map_location="cpu", weights_only=True)
