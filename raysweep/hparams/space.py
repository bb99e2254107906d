"""The plain-Python half of the hyper-parameter search: the settings that reach a model size, the
trials a candidate runs, the objective, and the overlay of best values. The sweep's `hparams`
section itself (spaces, proxy budget, the proxy sweep) is checked and built by
raysweep.sweep.spec; the Ray and Optuna half is raysweep.hparams.search.

A candidate is never run by code of its own: its values become a `heads:` override of one model
size (the same override the grid reads from OUT/hparams.yaml), the proxy's one Dp, one Df and
fewer epochs become a sweep (spec.proxy_sweep), and plan.Planner turns that sweep into ordinary
trials. So a proxy trial trains exactly what the grid would train with those values, and a tuned
value reaches the grid's trial configs, hence their ids, the same way.

Left out: integer and categorical spaces (batch size, flip): the search tunes learning rates,
weight decay, warm-up and eq. 3's alpha and tau, all numbers.
"""

from __future__ import annotations

import math

from raysweep.sweep import plan, spec
from raysweep.train.settings import TrainSettings

DEFAULT_TRIALS = 12               # proxy trials per model size (--trials overrides)
DEFAULT_CONCURRENT = 4            # proxy trials at once: TPE learns from finished ones only
SIGNIFICANT = 4                   # digits kept in the overlay: 1.234e-3, not 0.0012339871


def space_for(sweep: spec.Sweep, heads: int) -> dict[str, tuple[str, float, float]]:
    """name -> (kind, low, high) of the settings that reach a model size: distill.* only where
    the size is a student with teachers."""
    out = {}
    for name, dist in sweep.hparams["space"].items():
        if name.startswith("distill.") and not sweep.teachers.get(heads):
            continue
        kind, (low, high) = next(iter(dist.items()))
        out[name] = (kind, float(low), float(high))
    return out


def trials_of(proxy: spec.Sweep, heads: int) -> list[plan.Trial]:
    """Every trial a proxy trial of size `heads` needs, prerequisites first: its pretraining, then
    per downstream dataset its fine-tune and each of its distillations (and their teachers)."""
    p = plan.Planner(proxy)
    dp, seed = p.dp_images(proxy.dp[0]), proxy.seeds[0]
    for down in proxy.downstream:
        df = p.df_images(down, proxy.df[0])
        p.finetune(heads, dp, down, df, seed)
        for teachers in proxy.teachers.get(heads, ()):
            p.distill(heads, teachers, dp, down, df, seed)
    return list(p.trials.values())


def shared_trials(sweep: spec.Sweep, tuned: dict[int, dict], heads: int) -> list[plan.Trial]:
    """The trials every candidate of `heads` has in common -- the teachers', and its own stages
    that no searched setting reaches: a trial config holds the values that change its result, so
    these are exactly the trials equal at the space's lowest and highest values."""
    space = space_for(sweep, heads)
    ends = [trials_of(spec.proxy_sweep(sweep, tuned, heads, {n: b[i] for n, b in space.items()}),
                      heads) for i in (1, 2)]
    high = {t.trial_id for t in ends[1]}
    return [t for t in ends[0] if t.trial_id in high]


def epochs_of(trial: plan.Trial) -> int:
    """How many per-epoch reports a trial makes (a fractional last epoch reports too); a phase
    set by `steps` makes one per pass over its subset, ceil(steps / ceil(images / batch))."""
    c = trial.config
    if "pretrain" in c["train"]:
        phases = [(c["train"]["pretrain"], c["dp"]), (c["train"]["finetune"], c["df"])]
    else:
        phases = [(c["train"], c["dp"] if trial.stage == "pretrain" else c["df"])]
    return sum(_reports(settings, images) for settings, images in phases)


def _reports(settings: dict, images: int) -> int:
    if settings.get("steps") is None:
        return math.ceil(settings.get("epochs", TrainSettings.epochs))
    per_epoch = math.ceil(images / settings.get("batch_size", TrainSettings.batch_size))
    return math.ceil(settings["steps"] / per_epoch)


def objective(rows: list[dict]) -> float:
    """The proxy trial's score: mean top-1 downstream test error of its fine-tunes and
    distillations; 1.0, the worst error, when one diverged or failed (so TPE learns that the region
    is bad, which a failed Optuna trial would not tell it)."""
    if any(r["status"] != "ok" for r in rows):
        return 1.0
    errors = [r["error"] for r in rows if r["stage"] != "pretrain"]
    return sum(errors) / len(errors)


def rounded(values: dict[str, float], space: dict[str, tuple]) -> dict[str, float]:
    """Best values to SIGNIFICANT digits, kept inside their ranges."""
    return {name: min(max(float(f"{v:.{SIGNIFICANT}g}"), space[name][1]), space[name][2])
            for name, v in sorted(values.items())}


def overlay(tuned: dict[int, dict]) -> dict:
    """OUT/hparams.yaml: per model size overrides the grid merges over the sweep
    (`--overrides`), in the `heads:` form report.hparams_section reads too."""
    return {"heads": {h: dict(v) for h, v in sorted(tuned.items())}}
