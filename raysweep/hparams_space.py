"""The plain-Python half of the hyper-parameter search: the sweep's `hparams` section (search
spaces and proxy budget) checked, the proxy sweep a candidate is planned from, and the overlay of
best values. The Ray and Optuna half is hparams.py.

A candidate is never run by code of its own: its values become a `heads:` override of one model
size (the same override the grid reads from OUT/hparams.yaml), the proxy's one Dp, one Df and
fewer epochs become a sweep, and plan.Planner turns that sweep into ordinary trials. So a proxy
trial trains exactly what the grid would train with those values, and a tuned value reaches the
grid's trial configs, hence their ids, the same way.

Search-space bounds are checked against the training loop's own rules (train.TrainSettings,
train.DistillSettings) at both the grid's and the proxy's epochs, so a candidate can never be a
setting that training rejects. Left out: integer and categorical spaces (batch size, flip): the
issue asks for learning rate, weight decay, warm-up and eq. 3's alpha and tau, all numbers.
"""

from __future__ import annotations

import math

from raysweep import plan, spec, train
from raysweep.spec import SETTINGS, SweepError

SPACE_KINDS = ("log", "uniform")  # log-uniform (0 < low < high) or uniform (low < high)
DEFAULT_TRIALS = 12               # proxy trials per model size (--trials overrides)
DEFAULT_CONCURRENT = 4            # proxy trials at once: TPE learns from finished ones only
SIGNIFICANT = 4                   # digits kept in the overlay: 1.234e-3, not 0.0012339871
# Number settings a search may tune; not epochs: the proxy sets those, and ASHA needs every
# candidate of a size to make the same number of per-epoch reports.
SEARCHABLE = sorted(k for k, kind in SETTINGS.items() if kind is float and
                    not k.endswith(".epochs"))


def validate(sweep: spec.Sweep) -> None:
    """Check a parsed sweep's `hparams` section (spec.parse calls this); SweepError names it."""
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
            spec.amounts([proxy[key]], file, key, datasets)
        except SweepError as err:
            raise SweepError(file, f"hparams.proxy.{key}", err.message) from None
    for stage, epochs in (proxy.get("epochs") or {}).items():
        if epochs <= 0:
            raise SweepError(file, f"hparams.proxy.epochs.{stage}", f"expected > 0, got {epochs}")
    space = h.get("space")
    if not isinstance(space, dict) or not space:
        raise SweepError(file, "hparams.space", "expected a mapping stage.setting -> "
                                                "{log: [low, high]} or {uniform: [low, high]}")
    try:  # spec.parse checks every size's settings at the proxy's epochs
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


def check_value(sweep: spec.Sweep, name: str, value: float, file: str, path: str) -> None:
    """`value` for setting `name` must be one training accepts, for every model size."""
    stage, key = name.split(".")
    for heads in sweep.model["heads"]:
        settings = plan.size_settings(sweep, heads)
        try:
            if key in spec.DISTILL_KEYS:
                given = {k: settings["distill"][k] for k in spec.DISTILL_KEYS}
                train.DistillSettings(**{**given, key: value})
            else:
                train.TrainSettings(**{**settings["train"][stage], key: value})
        except ValueError as err:
            raise SweepError(file, path, f"{value} is not accepted with {heads} heads' other "
                                         f"settings ({err})") from None


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


def proxy_sweep(sweep: spec.Sweep, tuned: dict[int, dict], heads: int | None = None,
                values: dict | None = None) -> spec.Sweep:
    """The sweep proxy trials are planned from: the proxy's one Dp and Df and its epochs for every
    size; sizes already tuned at their best values; size `heads` at the candidate `values`. Its
    `hparams` section is dropped: it is a plain sweep of the proxy trials."""
    proxy = sweep.hparams["proxy"]
    epochs = {f"{stage}.epochs": n for stage, n in (proxy.get("epochs") or {}).items()}
    given = sweep.raw.get("heads") or {}
    sizes = {h: {**given.get(h, {}), **tuned.get(h, {}), **epochs,
                 **(values if h == heads else {})} for h in sweep.model["heads"]}
    raw = {k: v for k, v in sweep.raw.items() if k != "hparams"}
    return spec.parse(spec.merge(raw, {"dp": [proxy["dp"]], "df": [proxy["df"]],
                                       "heads": sizes}), sweep.file)


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
    ends = [trials_of(proxy_sweep(sweep, tuned, heads, {n: b[i] for n, b in space.items()}),
                      heads) for i in (1, 2)]
    high = {t.trial_id for t in ends[1]}
    return [t for t in ends[0] if t.trial_id in high]


def epochs_of(trial: plan.Trial) -> int:
    """How many per-epoch reports a trial makes (a fractional last epoch reports too)."""
    settings = trial.config["train"]
    phases = [settings["pretrain"], settings["finetune"]] if "pretrain" in settings else [settings]
    return sum(math.ceil(s.get("epochs", train.TrainSettings.epochs)) for s in phases)


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
