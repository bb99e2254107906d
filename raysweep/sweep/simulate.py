"""The simulate backend: trials answered instantly by known laws plus noise.

A sweep with `backend: simulate` goes through the same planner, executor and results path as a
real one, so the adaptive sampler and the fitter can be tested and benchmarked against a truth that
is known. Per trial:

    error = law(x) * exp(noise * z),   z ~ N(0, 1)

with x in {dp, df (images), params, teacher_params (parameters)}. A law is an expression in the
language of the fitted laws (laws/form.py), numbers and inputs only, e.g.
"0.05 + 6.0 * dp**-0.35 + 40 * params**-0.3 + 2 * df**-0.4 * (dp / 1e4)**0.1" -- so a truth with
interactions can be studied -- or the older mapping {E, terms: {input: {coef, exponent}}}. The
plain law answers finetune (and pretrain, without the summands that use df), the distilled law
answers distill. z is drawn from a generator
seeded by the trial id, so a re-run gives the same answer. `hold_s` (seconds, default 0) makes
each trial hold its resources that long, so packing and scheduling can be watched without training. The cross-entropy is simulated by the
optional `plain_loss` / `distilled_loss` laws with the same noise; without them it is derived as
-ln(1 - error), the loss of a classifier that puts probability 1 - error on its prediction -- a
monotone stand-in, enough for the loss fits to have something to fit.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from raysweep.errors import InputError
from raysweep.laws.form import Form, parse
from raysweep.sweep.fields import SweepError

INPUTS = ("dp", "df", "params", "teacher_params")
LAWS = ("plain", "distilled", "plain_loss", "distilled_loss")


class Outcome:
    def __init__(self, status, error=None, loss=None, message=None):
        self.status, self.error, self.loss, self.message = status, error, loss, message


def validate(spec, file: str) -> None:
    if not isinstance(spec, dict):
        raise SweepError(file, "simulate", "backend simulate needs a 'simulate' mapping with "
                                           "noise, plain and distilled laws")
    unknown = set(spec) - {"noise", "hold_s", *LAWS}
    if unknown:
        raise SweepError(file, f"simulate.{min(unknown)}",
                         f"unknown key; expected noise, hold_s, {', '.join(LAWS)}")
    for name in ("plain", "distilled"):
        if name not in spec:
            raise SweepError(file, f"simulate.{name}", "required law is missing")
    noise = spec.get("noise", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise SweepError(file, "simulate.noise", f"expected a sigma >= 0, got {noise!r}")
    for name in LAWS:
        if name in spec:
            validate_law(spec[name], file, f"simulate.{name}")


def validate_law(law, file: str, path: str) -> None:
    if isinstance(law, str):
        try:
            truth(law)
        except InputError as err:
            raise SweepError(file, path, str(err)) from None
        return
    if not isinstance(law, dict) or set(law) - {"E", "terms"} or "terms" not in law:
        raise SweepError(file, path, "expected {E: number, terms: {input: {coef, exponent}}}")
    for name, term in law["terms"].items():
        if name not in INPUTS:
            raise SweepError(file, f"{path}.terms.{name}", f"unknown input; expected one of "
                                                           f"{INPUTS}")
        if not isinstance(term, dict) or set(term) != {"coef", "exponent"}:
            raise SweepError(file, f"{path}.terms.{name}", "expected {coef: ..., exponent: ...}")


@functools.lru_cache(maxsize=64)
def truth(expression: str, missing: tuple[str, ...] = ()) -> Form:
    """The known law EXPRESSION, less the summands that use the MISSING inputs."""
    form = parse(expression, INPUTS, fitted=False)
    return form.without(missing) if missing else form


def law_value(law: dict | str, x: dict) -> float:
    """The law's value at inputs X; an input that is None (a pretraining has no Df) drops the
    summands that use it."""
    if isinstance(law, str):
        missing = tuple(k for k in truth(law).inputs if x.get(k) is None)
        form = truth(law, missing)
        return float(form.predict({k: float(x[k]) for k in form.inputs}, {}))
    total = float(law.get("E", 0.0))
    for name, term in law["terms"].items():
        if x.get(name) is not None:
            total += term["coef"] * float(x[name]) ** -term["exponent"]
    return total


def answer(trial) -> Outcome:
    spec, c = trial.config["simulate"], trial.config
    time.sleep(spec.get("hold_s", 0.0))  # stand-in for training time: lets tests see packing
    distilled = trial.stage == "distill"
    x = {"dp": c["dp"], "df": c.get("df"), "params": trial.params,
         "teacher_params": trial.teacher_params}
    rng = np.random.default_rng(int(trial.trial_id, 16) % 2**63)
    noise = math.exp(spec.get("noise", 0.0) * rng.standard_normal())
    error = law_value(spec["distilled" if distilled else "plain"], x) * noise
    if not 0 < error < 1:
        return Outcome("diverged", message=f"simulated error {error:.3g} is outside (0, 1)")
    loss_law = spec.get("distilled_loss" if distilled else "plain_loss")
    loss = law_value(loss_law, x) * noise if loss_law else -math.log1p(-error)
    return Outcome("ok", error, loss)
