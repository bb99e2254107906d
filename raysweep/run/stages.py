"""A trial that trains: data -> model -> train -> checkpoint (raysweep.run.trial.run records it).

Checkpoints are weights only (loaded with weights_only=True) at store.layout.checkpoint; while a
trial runs, store.layout.partial_checkpoint holds a recently finished epoch, so a killed trial
resumes there. That resumable state is saved at an epoch's end once CHECKPOINT_MIN_S have passed
since the last save, and at least 1 / CHECKPOINT_SHARE times as long as that save took: with
epochs of one step (a fixed-step run on a few dozen images) a save per epoch cost more than the
training itself (BENCHMARKS.md, "Trials: the step"), and a killed trial still loses at most a few
seconds of training.
"""

from __future__ import annotations

import io
import time

import torch

from raysweep.data.load import load_dataset, subset_indices
from raysweep.run.trial import Context
from raysweep.store import layout, storage
from raysweep.sweep.plan import Trial
from raysweep.train import loop, models
from raysweep.train.settings import DistillSettings, TrainSettings

CHECKPOINT_MIN_S = 1.0    # seconds between resumable saves, at least ...
CHECKPOINT_SHARE = 0.02   # ... and long enough that saving takes at most 2 % of a trial's time


def train(trial: Trial, ctx: Context) -> loop.TrainResult:
    """Run `trial`'s stage; its outcome.

    Initial weights (fresh models, new heads) come from torch's global generator: seeded here by
    the config's seed, so a trial id means one run in any process, and a size starts from the same
    weights at every Dp (common random numbers for the fits)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trial.config["seed"])
        return STAGES[trial.stage](trial, ctx)


def load_split(spec: dict, model: dict, ctx: Context, amount: int, seed: int):
    """The dataset and its (train images, train labels, test images, test labels, train index):
    whole splits on the host, mapped from the node's split cache and shared by every trial there,
    and the nested `amount` subset as an index into them (never a copy; the loop gathers batches
    by it and copies them to ctx.device)."""
    ds = load_dataset(spec["name"], image_size=model["image_size"], channels=model["channels"],
                      data_root=ctx.data_root, params=spec["params"], download=ctx.download)
    idx = subset_indices(ds.train.labels, amount, seed)
    return ds, ds.train.images, ds.train.labels, ds.test.images, ds.test.labels, idx


def settings(config: dict, ds) -> TrainSettings:
    given = dict(config)
    given.setdefault("flip", ds.flip)
    return TrainSettings(**given)


def fresh_model(model: dict, classes: int, device: str) -> torch.nn.Module:
    kwargs = {k: v for k, v in model.items()}
    return models.create_model(num_classes=classes, **kwargs).to(device)


def save_model(ctx: Context, name: str, net: torch.nn.Module) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
    storage.write_bytes(ctx.out, layout.checkpoint(name), buf.getvalue())


def load_model(ctx: Context, trial_id: str, model: dict, device: str) -> torch.nn.Module:
    rel = layout.checkpoint(trial_id)
    if not storage.exists(ctx.out, rel):
        raise FileNotFoundError(f"checkpoint {ctx.out}/{rel} is missing: the prerequisite trial "
                                f"{trial_id} has not finished (or its output was removed)")
    state = torch.load(io.BytesIO(storage.read_bytes(ctx.out, rel)), weights_only=True,
                       map_location=device)
    classes = state["head.weight"].shape[0]
    net = fresh_model(model, classes, device)
    net.load_state_dict(state)
    return net


def epoch_metrics(trial: Trial, phase: str, epoch: int, state: dict) -> dict:
    """One epoch's report: where it is (stage, phase, epochs and optimizer steps done in the
    phase, of total_steps) and how training goes (mean train loss over the epoch, the last step's
    learning rate, training images per second); `fit` adds test_error and test_loss when the
    epoch evaluates."""
    m = state["metrics"]
    return {"stage": trial.stage, "phase": phase, "epoch": epoch, "steps": state["step"],
            "total_steps": state["total_steps"], "train_loss": m["train_loss"], "lr": m["lr"],
            "images_per_s": m["images_per_s"]}


def fit(net, split, cfg: dict, ds, trial: Trial, ctx: Context, phase: str, **distill):
    """train.train with a resumable per-epoch checkpoint under layout.partial_checkpoint, and
    ctx.on_epoch's reports. The phase's last epoch is reported after training returns, with its
    final evaluation as test numbers: the weights are the same, so evaluating twice would waste
    one pass over the test split."""
    rel = layout.partial_checkpoint(trial.trial_id, phase)
    start_state = None
    if storage.exists(ctx.out, rel):
        start_state = loop.load_checkpoint(io.BytesIO(storage.read_bytes(ctx.out, rel)))
    train_settings = settings(cfg, ds)
    last: list[dict] = []
    save_due = report_due = 0.0  # perf_counter times from which an epoch's end saves the
                                 # resumable state, and from which it is reported

    def on_epoch(epoch: int, state: dict) -> None:
        nonlocal save_due, report_due
        now = time.perf_counter()
        if state["step"] < state["total_steps"] and now >= save_due:  # the last: a record
            buf = io.BytesIO()
            loop.save_checkpoint(state, buf)
            storage.write_bytes(ctx.out, rel, buf.getvalue())
            took = time.perf_counter() - now
            save_due = now + max(CHECKPOINT_MIN_S, took / CHECKPOINT_SHARE)
        if ctx.on_epoch is None:
            return
        metrics = epoch_metrics(trial, phase, epoch, state)
        if state["step"] == state["total_steps"]:
            last.append(metrics)
            return
        evaluates = bool(ctx.eval_every) and epoch % ctx.eval_every == 0
        if not evaluates and now < report_due:
            return
        report_due = now + ctx.report_every_s
        if evaluates:
            started = time.perf_counter()
            error, loss = loop.evaluate(net, split[2], split[3],
                                        batch_size=train_settings.eval_batch_size)
            metrics.update(test_error=error, test_loss=loss, eval_s=time.perf_counter() - started)
        ctx.on_epoch(trial, metrics)

    result = loop.train(net, *split[:4], train_settings, seed=trial.config["seed"],
                        on_epoch=on_epoch, start_state=start_state, index=split[4], **distill)
    storage.delete(ctx.out, rel)
    if last:
        ctx.on_epoch(trial, {**last[0], "test_error": result.error, "test_loss": result.loss})
    return result


def run_pretrain(trial: Trial, ctx: Context):
    c = trial.config
    ds, *split = load_split(c["upstream"], c["model"], ctx, c["dp"], c["seed"])
    net = fresh_model(c["model"], ds.num_classes, ctx.device)
    result = fit(net, split, c["train"], ds, trial, ctx, "pretrain")
    if result.status == "ok":
        save_model(ctx, trial.trial_id, net)
    return result


def run_finetune(trial: Trial, ctx: Context, net=None, cfg=None, **distill):
    c = trial.config
    ds, *split = load_split(c["downstream"], c["model"], ctx, c["df"], c["seed"])
    if net is None:
        net = load_model(ctx, c["pretrained"], c["model"], ctx.device)
    models.replace_head(net, ds.num_classes)
    net.to(ctx.device)
    result = fit(net, split, cfg or c["train"], ds, trial, ctx, "finetune", **distill)
    if result.status == "ok":
        save_model(ctx, trial.trial_id, net)
    return result


def teachers(trial: Trial, ctx: Context) -> list[torch.nn.Module]:
    c = trial.config
    nets = [load_model(ctx, tid, {**c["model"], "heads": h}, ctx.device)
            for tid, h in zip(c["teacher_trials"], c["teachers"])]
    for net in nets:
        net.eval().requires_grad_(False)
    return nets


def run_distill(trial: Trial, ctx: Context):
    c = trial.config
    d = c["distill"]
    guide = {"teachers": teachers(trial, ctx),
             "distill": DistillSettings(alpha=d["alpha"], tau=d["tau"],
                                              attention_weight=d["attention_weight"])}
    if d["stage"] == "finetune":
        return run_finetune(trial, ctx, **guide)
    # stage pretrain: guided pretraining of the student, then a plain fine-tune
    ds, *split = load_split(c["upstream"], c["model"], ctx, c["dp"], c["seed"])
    net = fresh_model(c["model"], ds.num_classes, ctx.device)
    result = fit(net, split, c["train"]["pretrain"], ds, trial, ctx, "pretrain", **guide)
    if result.status != "ok":
        return result
    return run_finetune(trial, ctx, net=net, cfg=c["train"]["finetune"])


STAGES = {"pretrain": run_pretrain, "finetune": run_finetune, "distill": run_distill}
