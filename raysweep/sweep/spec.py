"""Sweep files: YAML -> a validated, normalised `Sweep`.

Validation is strict and early: an unknown key, a wrong type, a fraction outside (0, 1], a count
above the dataset's size, a teacher not smaller than its student, an unknown dataset, a GPU fraction
that does not divide 1 -- each stops with one `SweepError` naming the file and the field path
(`teachers.8[1]`) and what was expected. Nothing is started or written before this passes.

The format is documented in sweeps/README.md; `FIELDS` below is its single source of truth for
keys and types. Left out on purpose: YAML anchors across files and includes (one study, one file).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from raysweep.sweep import gpus, simulate
from raysweep.sweep.fields import (
    DISTILL_KEYS,
    SETTINGS,
    TRAIN_KEYS,
    DatasetSpec,
    SweepError,
    amount,
    amounts,
    check,
    check_keys,
    dataset_spec,
    distill_spec,
    law_candidates,
    merge,
    model_spec,
    resources,
    size_settings,
    teacher_sets,
    train_spec,
)
from raysweep.train.settings import DistillSettings, TrainSettings

# key -> type (or nested table). `None` marks a free-form mapping validated elsewhere.
FIELDS: dict[str, Any] = {
    "name": str,
    "backend": str,
    "upstream": "dataset",
    "downstream": ["dataset"],
    "data_root": str,
    "model": {"head_dim": int, "heads": [int], "depth": int, "patch_size": int,
              "image_size": int, "channels": int},
    "dp": ["amount"],
    "df": ["amount"],
    "seeds": [int],
    "teachers": None,
    "distill": {"stage": str, "alpha": float, "tau": float, "attention_weight": float,
                "teacher_dp": "amount"},
    "train": {"pretrain": TRAIN_KEYS, "finetune": TRAIN_KEYS, "distill": TRAIN_KEYS},
    "resources": None,
    "retries": int,
    "out": str,
    "simulate": None,
    "laws": None,   # candidate forms per law, {law: {name: expression}} (fields.law_candidates)
    "heads": None,
    "hparams": {"trials": int, "concurrent": int, "space": None,
                "proxy": {"dp": "amount", "df": "amount",
                          "epochs": {"pretrain": float, "finetune": float, "distill": float}}},
    "monitor": {"eval_every": int, "project": str},
    "gpu": str,
}
# What a run shows while it runs, none of it part of a trial's config (hence of its id):
# eval_every -- epochs between test evaluations in the per-epoch reports (0: at each training
# phase's end only); project -- the W&B project / MLflow experiment of --track (default: `name`).
MONITOR_DEFAULTS = {"eval_every": 1}
BACKENDS = ("train", "simulate")
REQUIRED = ("name", "upstream", "downstream", "model", "dp", "df")
SPACE_KINDS = ("log", "uniform")  # log-uniform (0 < low < high) or uniform (low < high)
# Number settings a search may tune; not epochs: the proxy sets those, and ASHA needs every
# candidate of a size to make the same number of per-epoch reports.
SEARCHABLE = sorted(k for k, kind in SETTINGS.items() if kind is float and
                    not k.endswith(".epochs"))


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A validated study. Amounts stay as written (fraction or count); sweep.plan resolves them."""

    name: str
    file: str
    backend: str
    upstream: DatasetSpec
    downstream: tuple[DatasetSpec, ...]
    data_root: str | None
    model: dict
    dp: tuple[float | int, ...]
    df: tuple[float | int, ...]
    seeds: tuple[int, ...]
    teachers: dict[int, tuple[tuple[int, ...], ...]]
    distill: dict
    train: dict[str, dict]
    resources: dict[int, dict[str, float]]
    retries: int
    out: str | None
    simulate: dict | None
    hparams: dict | None
    monitor: dict          # {"eval_every": epochs, "project": name}; see MONITOR_DEFAULTS
    gpu: str | None = None  # the GPU type its shares are planned for (sweep/gpus.py), if any
    by_heads: dict[int, dict] = dataclasses.field(default_factory=dict)  # {"train", "distill"}
    raw: dict = dataclasses.field(default_factory=dict)  # as read (overrides merged): re-parsable
    laws: dict = dataclasses.field(default_factory=dict)  # {law: {name: expression}} offered

    def settings_for(self, heads: int) -> dict:
        """{"train": ..., "distill": ...} of one model size: the sweep's, or its `heads:` one."""
        return self.by_heads.get(heads, {"train": self.train, "distill": self.distill})


def load(path: str | Path, overrides: dict | None = None) -> Sweep:
    """Read and validate a sweep file; `overrides` (e.g. tuned hyper-parameters) merge on top."""
    file = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise SweepError(file, "(file)", "no such sweep file") from None
    except yaml.YAMLError as err:
        raise SweepError(file, "(file)", f"not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise SweepError(file, "(file)", "expected a mapping of fields at the top level")
    if overrides:
        raw = merge(raw, overrides)
    return parse(raw, file)


def parse(raw: dict, file: str = "<sweep>") -> Sweep:
    check_keys(raw, FIELDS, file, "")
    for key in REQUIRED:
        if key not in raw:
            raise SweepError(file, key, "required field is missing")
    check(raw, FIELDS, file, "")
    backend = raw.get("backend", "train")
    if backend not in BACKENDS:
        raise SweepError(file, "backend",
                         f"unknown backend {backend!r}; expected one of {BACKENDS}")
    upstream = dataset_spec(raw["upstream"], file, "upstream")
    downstream = tuple(dataset_spec(d, file, f"downstream[{i}]")
                       for i, d in enumerate(raw["downstream"]))
    if not downstream:
        raise SweepError(file, "downstream", "expected at least one downstream dataset")
    model = model_spec(raw["model"], file)
    dp = amounts(raw["dp"], file, "dp", [upstream])
    df = amounts(raw["df"], file, "df", downstream)
    teachers = teacher_sets(raw.get("teachers") or {}, model["heads"], file)
    distill = distill_spec(raw.get("distill") or {}, file)
    if "teacher_dp" in distill:
        amount(distill["teacher_dp"], file, "distill.teacher_dp", [upstream])
    if backend == "simulate":
        simulate.validate(raw.get("simulate"), file)
    sweep = Sweep(
        name=raw["name"], file=file, backend=backend, upstream=upstream, downstream=downstream,
        data_root=raw.get("data_root"), model=model, dp=dp, df=df,
        seeds=tuple(raw.get("seeds", [0])), teachers=teachers, distill=distill,
        train=train_spec(raw.get("train") or {}), resources=resources(raw.get("resources") or {},
                                                                      model["heads"], file),
        retries=raw.get("retries", 2), out=raw.get("out"), simulate=raw.get("simulate"),
        hparams=raw.get("hparams"), monitor=monitor_spec(raw, file),
        by_heads=size_settings(raw, model["heads"], file), raw=raw, gpu=gpu_spec(raw, file),
        laws=law_candidates(raw.get("laws"), file),
    )
    check_train(sweep)
    if sweep.hparams is not None:
        check_hparams(sweep)
    return sweep


def gpu_spec(raw: dict, file: str) -> str | None:
    """`gpu:`, a name from sweep/gpus.py's table: what the memory plan checks the shares on."""
    if "gpu" not in raw:
        return None
    try:
        gpus.gpu_type(raw["gpu"])
    except ValueError as err:
        raise SweepError(file, "gpu", str(err).removeprefix("gpu: ")) from None
    return raw["gpu"]


def monitor_spec(raw: dict, file: str) -> dict:
    monitor = {**MONITOR_DEFAULTS, "project": raw["name"], **(raw.get("monitor") or {})}
    if monitor["eval_every"] < 0:
        raise SweepError(file, "monitor.eval_every", f"expected epochs >= 0 (0: evaluate at the "
                                                     f"end only), got {monitor['eval_every']}")
    if not monitor["project"].strip():
        raise SweepError(file, "monitor.project", "expected a non-empty name")
    return monitor


def check_train(sweep: Sweep) -> None:
    """Every stage's settings, as each trial will see them (per size, per downstream set), must
    make a valid TrainSettings: a bad value stops the sweep here, not hours in, in one trial."""
    sizes = [("train", sweep.train)] + [(f"heads.{h}", v["train"])
                                        for h, v in sweep.by_heads.items()]
    for where, stages in sizes:
        for stage, settings in stages.items():
            for down in sweep.downstream if stage != "pretrain" else [None]:
                given = {**settings, **(down.finetune if down else {})}
                try:
                    TrainSettings(**given)
                except (ValueError, TypeError) as err:
                    raise SweepError(sweep.file, f"{where}.{stage}", str(err)) from None


# ---- the `hparams` section: what a search may tune, and the sweep its candidates run

def check_hparams(sweep: Sweep) -> None:
    """The `hparams` section: the proxy budget and the search spaces, whose bounds must be values
    training accepts for every size at both the grid's and the proxy's epochs."""
    h, file = sweep.hparams, sweep.file
    for key in ("trials", "concurrent"):
        if h.get(key, 1) < 1:
            raise SweepError(file, f"hparams.{key}", f"expected an integer >= 1, got {h[key]}")
    proxy = h.get("proxy")
    if not proxy:
        raise SweepError(file, "hparams.proxy", "required: {dp: amount, df: amount, epochs: "
                                                "{pretrain: n, finetune: n}}")
    for key, datasets in (("dp", [sweep.upstream]), ("df", sweep.downstream)):
        if key not in proxy:
            raise SweepError(file, f"hparams.proxy.{key}", "required: the one amount (fraction "
                                                           "or image count) proxy trials use")
        try:
            amounts([proxy[key]], file, key, datasets)
        except SweepError as err:
            raise SweepError(file, f"hparams.proxy.{key}", err.message) from None
    for stage, epochs in (proxy.get("epochs") or {}).items():
        if epochs <= 0:
            raise SweepError(file, f"hparams.proxy.epochs.{stage}", f"expected > 0, got {epochs}")
    space = h.get("space")
    if not isinstance(space, dict) or not space:
        raise SweepError(file, "hparams.space", "expected a mapping stage.setting -> "
                                                "{log: [low, high]} or {uniform: [low, high]}")
    try:  # parse checks every size's settings at the proxy's epochs
        proxied = proxy_sweep(sweep, {})
    except SweepError as err:
        raise SweepError(file, "hparams.proxy", f"the settings on the proxy are not valid: "
                                                f"{err.field}: {err.message}") from None
    for name, dist in space.items():
        path = f"hparams.space.{name}"
        if name not in SEARCHABLE:
            raise SweepError(file, path, f"not a searchable setting; expected one of "
                                         f"{', '.join(SEARCHABLE)}")
        for value in bounds(dist, file, path):
            for s in (sweep, proxied):
                check_value(s, name, value, file, path)


def bounds(dist, file: str, path: str) -> tuple[float, float]:
    """(low, high) of a `{log: [low, high]}` or `{uniform: [low, high]}` entry."""
    expected = "expected {log: [low, high]} (0 < low < high) or {uniform: [low, high]}"
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in SPACE_KINDS:
        raise SweepError(file, path, f"{expected}, got {dist!r}")
    kind, ends = next(iter(dist.items()))
    if (not isinstance(ends, list) or len(ends) != 2 or
            any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in ends)):
        raise SweepError(file, f"{path}.{kind}", f"expected [low, high], two numbers, got {ends!r}")
    low, high = ends
    if not low < high or (kind == "log" and low <= 0):
        raise SweepError(file, f"{path}.{kind}", f"{expected}, got [{low}, {high}]")
    return float(low), float(high)


def check_value(sweep: Sweep, name: str, value: float, file: str, path: str) -> None:
    """`value` for setting `name` must be one training accepts, for every model size."""
    stage, key = name.split(".")
    for heads in sweep.model["heads"]:
        settings = sweep.settings_for(heads)
        try:
            if key in DISTILL_KEYS:
                given = {k: settings["distill"][k] for k in DISTILL_KEYS}
                DistillSettings(**{**given, key: value})
            else:
                TrainSettings(**{**settings["train"][stage], key: value})
        except ValueError as err:
            raise SweepError(file, path, f"{value} is not accepted with {heads} heads' other "
                                         f"settings ({err})") from None


def proxy_sweep(sweep: Sweep, tuned: dict[int, dict], heads: int | None = None,
                values: dict | None = None) -> Sweep:
    """The sweep proxy trials are planned from: the proxy's one Dp and Df and its epochs for every
    size; sizes already tuned at their best values; size `heads` at the candidate `values`. Its
    `hparams` section is dropped: it is a plain sweep of the proxy trials."""
    proxy = sweep.hparams["proxy"]
    epochs = {f"{stage}.epochs": n for stage, n in (proxy.get("epochs") or {}).items()}
    given = sweep.raw.get("heads") or {}
    sizes = {h: {**given.get(h, {}), **tuned.get(h, {}), **epochs,
                 **(values if h == heads else {})} for h in sweep.model["heads"]}
    raw = {k: v for k, v in sweep.raw.items() if k != "hparams"}
    return parse(merge(raw, {"dp": [proxy["dp"]], "df": [proxy["df"]],
                                       "heads": sizes}), sweep.file)
