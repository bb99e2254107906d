"""A Sweep -> the trial DAG (pretrain -> finetune -> distill), named by content hashes.

A trial's id is a hash of its config resolved down to every default (raysweep.sweep.identity):
everything that changes its result (datasets, model, amounts in images, seed, training and
distillation settings, prerequisites' ids) and nothing about where output goes. Prerequisites are
explicit ids, so the executor can start a trial the moment they are done.

  pretrain(M, Dp, seed)                      -> checkpoint
  finetune(pretrain, downstream, Df)         -> E(Dp, M, Df)         (eq. 1 / 2)
  distill, stage finetune: student pretrain + teachers' finetunes at the same Df, and at the
                           same Dp or at `distill.teacher_dp` (teachers reused from one Dp)
  distill, stage pretrain: teachers' pretrains (at that Dp) guide the student's pretraining,
                           then a plain fine-tune, inside the one trial

Left out: trials shared across sweeps with different seeds lists are still one trial each (same id),
which is what makes resuming and extending a sweep free.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Iterable

from raysweep import data
from raysweep.sweep import identity
from raysweep.sweep.spec import Sweep
from raysweep.train import shape
from raysweep.train.settings import TrainSettings

STAGES = ("pretrain", "finetune", "distill")


@dataclasses.dataclass(frozen=True)
class Trial:
    trial_id: str
    stage: str
    config: dict                    # resolved (identity.resolve); hashed into trial_id; what runs
    depends_on: tuple[str, ...]
    resources: dict                 # {"GPU": fraction, "CPU": threads}
    params: int                     # student parameters
    teacher_params: float | None    # mean parameters of the teachers

    def summary(self) -> dict:
        c = self.config
        return {"trial_id": self.trial_id, "stage": self.stage, "heads": c["model"]["heads"],
                "params": self.params, "dp": c["dp"], "df": c.get("df"),
                "teacher_heads": list(c.get("teachers", [])), "seed": c["seed"],
                "downstream": (c.get("downstream") or {}).get("name"),
                "resources": dict(self.resources), "depends_on": list(self.depends_on)}

    @functools.cached_property
    def flops(self) -> float:
        return flops(self)


trial_id = identity.trial_id   # of a resolved config (identity.resolve)


class Planner:
    """Builds trials on demand and memoises them by id, so shared prerequisites appear once."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.trials: dict[str, Trial] = {}
        self.up_size = data.train_size(sweep.upstream.name, sweep.upstream.params)

    def base(self, heads: int, dp: int, seed: int) -> dict:
        s = self.sweep
        config = {"backend": s.backend, "upstream": {"name": s.upstream.name,
                                                     "params": s.upstream.params},
                  "model": {**{k: v for k, v in s.model.items() if k != "heads"}, "heads": heads},
                  "dp": dp, "seed": seed}
        if s.backend == "simulate":
            config["simulate"] = s.simulate
        return config

    def add(self, stage: str, config: dict, depends_on: Iterable[str], classes: int,
            teacher_heads: tuple[int, ...] = ()) -> str:
        config = identity.resolve({"stage": stage, **config})
        tid = trial_id(config)
        if tid not in self.trials:
            model = config["model"]
            params = self.params(model["heads"], classes)
            teacher = ([self.params(h, classes) for h in teacher_heads] or [None])
            self.trials[tid] = Trial(
                tid, stage, config, tuple(depends_on), self.sweep.resources.get(
                    model["heads"], {"GPU": 0.0, "CPU": 1}), params,
                None if teacher[0] is None else sum(teacher) / len(teacher))
        return tid

    def params(self, heads: int, classes: int) -> int:
        m = self.sweep.model
        return shape.param_count(heads=heads, num_classes=classes, head_dim=m["head_dim"],
                                 depth=m["depth"], patch_size=m["patch_size"],
                                 image_size=m["image_size"], channels=m["channels"])

    def settings(self, heads: int) -> dict:
        return self.sweep.settings_for(heads)

    def pretrain(self, heads: int, dp: int, seed: int) -> str:
        config = {**self.base(heads, dp, seed), "train": self.settings(heads)["train"]["pretrain"]}
        return self.add("pretrain", config, (), self.up_classes)

    @property
    def up_classes(self) -> int:
        return data.num_classes(self.sweep.upstream.name, self.sweep.upstream.params)

    def finetune(self, heads: int, dp: int, down, df: int, seed: int) -> str:
        pre = self.pretrain(heads, dp, seed)
        config = {**self.base(heads, dp, seed), "downstream": downstream(down), "df": df,
                  "train": {**self.settings(heads)["train"]["finetune"], **down.finetune},
                  "pretrained": pre}
        return self.add("finetune", config, (pre,), data.num_classes(down.name, down.params))

    def distill(self, heads: int, teachers: tuple[int, ...], dp: int, down, df: int,
                seed: int) -> str:
        train, settings = self.settings(heads)["train"], self.settings(heads)["distill"]
        # where the teachers come from is in their trials' ids, not in the config: so teachers
        # reused from Dp X make, at Dp X, the very trial that same-Dp teachers make
        tdp = dp if "teacher_dp" not in settings else self.dp_images(settings["teacher_dp"])
        config = {**self.base(heads, dp, seed), "downstream": downstream(down), "df": df,
                  "teachers": list(teachers),
                  "distill": {k: v for k, v in settings.items() if k != "teacher_dp"}}
        if settings["stage"] == "finetune":
            deps = (self.pretrain(heads, dp, seed),
                    *(self.finetune(t, tdp, down, df, seed) for t in teachers))
            config.update(train={**train["distill"], **down.finetune},
                          pretrained=deps[0], teacher_trials=list(deps[1:]))
        else:
            deps = tuple(self.pretrain(t, tdp, seed) for t in teachers)
            config.update(train={"pretrain": train["pretrain"],
                                 "finetune": {**train["finetune"], **down.finetune}},
                          teacher_trials=list(deps))
        return self.add("distill", config, deps, data.num_classes(down.name, down.params),
                        teachers)

    def dp_images(self, amount) -> int:
        return data.resolve_amount(amount, self.up_size)

    def df_images(self, down, amount) -> int:
        return data.resolve_amount(amount, data.train_size(down.name, down.params))


def downstream(down) -> dict:
    return {"name": down.name, "params": down.params}


def plan(sweep: Sweep, dp_images: Iterable[int] | None = None) -> list[Trial]:
    """Every trial of the grid, prerequisites first. `dp_images` overrides the sweep's Dp values
    (the adaptive sampler asks for Dp between the grid's points)."""
    p = Planner(sweep)
    dps = sorted(set(dp_images)) if dp_images is not None else sorted(
        {p.dp_images(a) for a in sweep.dp})
    for seed in sweep.seeds:
        for dp in dps:
            for down in sweep.downstream:
                for df in sorted({p.df_images(down, a) for a in sweep.df}):
                    for heads in sweep.model["heads"]:
                        p.finetune(heads, dp, down, df, seed)
                        for teachers in sweep.teachers.get(heads, ()):
                            p.distill(heads, teachers, dp, down, df, seed)
    return list(p.trials.values())


def flops(t: Trial) -> float:
    """Training compute of a trial: ~6 FLOPs per parameter per token (forward + backward), plus
    ~2 per teacher parameter per token for teacher forwards, for every image the training sees:
    epochs x images, or with `steps` set, steps x images per step (the batch, or all of a smaller
    subset). Evaluation passes are not counted."""
    c = t.config
    m = c["model"]
    tokens = (m["image_size"] // m["patch_size"]) ** 2 + 1
    stages = c["train"] if "pretrain" in c["train"] else {t.stage: c["train"]}
    total = 0.0
    for stage, given in stages.items():
        n = c["dp"] if stage == "pretrain" else c.get("df", 0)
        per_token = 6 * t.params + 2 * (t.teacher_params or 0) * len(c.get("teachers", []))
        total += per_token * tokens * images_seen(given, n)
    return total


def images_seen(given: dict, n: float) -> float:
    """Images a training of settings GIVEN (a train dict of a config) pushes through the model on
    N training images: epochs x N, or steps x the batch (all N, when fewer)."""
    settings = TrainSettings(**given)
    return settings.steps * min(settings.batch_size, n) if settings.steps else settings.epochs * n


def critical_first(trials: list[Trial]) -> list[Trial]:
    """TRIALS (in any order), those heading the most compute still to come first: a trial's
    own FLOPs plus the costliest chain of its dependants. Started in this order whenever ready, the
    long chains (pretraining -> teacher fine-tunes -> the big student's distillation) do not end
    the grid with one slot busy and the others idle (list scheduling by "bottom level", as in
    HLFET). Ties keep plan order."""
    by_id = {t.trial_id: t for t in trials}
    children: dict[str, list[str]] = {}
    for t in trials:
        for d in t.depends_on:
            children.setdefault(d, []).append(t.trial_id)
    rank: dict[str, float] = {}

    def chain(i: str) -> float:  # the DAG is 3 stages deep: recursion stays shallow
        if i not in rank:
            rank[i] = flops(by_id[i]) + max(map(chain, children.get(i, ())), default=0.0)
        return rank[i]

    return sorted(trials, key=lambda t: -chain(t.trial_id))


def summary(trials: list[Trial]) -> dict:
    """Counts per stage and the resources of each model size, for --dry-run."""
    by_stage = Counter(t.stage for t in trials)
    sizes = {}
    for t in trials:
        sizes.setdefault(t.config["model"]["heads"], {"params": t.params,
                                                      "resources": t.resources})
    return {"trials": len(trials), "by_stage": {s: by_stage.get(s, 0) for s in STAGES},
            "sizes": dict(sorted(sizes.items()))}
