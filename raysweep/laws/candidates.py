"""Candidate forms of one law, compared on evidence, and the one selected.

Every candidate is fitted to the same rows with the same objective and gets the same checks
(laws/checks.py), plus a penalised criterion: the BIC of its log residuals,

    BIC = n log(mean r^2) + p log n      (r = log y - log law; p parameters, n rows),

which a form pays for each parameter it adds. The rule, stated once (`select`):

1. only forms that fitted (status ok) compete;
2. favour what extrapolates: each form's extrapolation score is the geometric mean, over the inputs
   every competitor held out, of its MAPE on the rows at that input's largest value (refitted
   without them); forms within EXTRAPOLATION_TOLERANCE of the best score, or within one noise
   floor of it (the MAPE seed noise alone costs an exactly right law there: differences below it
   are the seeds', not the forms'), stay in;
3. of those, the lowest BIC wins (with no extrapolation check to go by, the lowest BIC overall).

Why this order: the boundary is read where the data thin out, so a form that carries past its rows
comes first; among forms that carry about equally far, the BIC prefers the one whose extra terms
the rows actually ask for, which keeps a nested form with a term fitted to noise from winning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from raysweep.laws.entries import LawEntry
from raysweep.laws.law import Fit

EXTRAPOLATION_TOLERANCE = 0.10   # a score within 10 % of the best extrapolates as well


def bic(fit: Fit, X: Mapping[str, np.ndarray], y: np.ndarray) -> float:
    """BIC of FIT's log residuals on its rows (lower is better)."""
    r = np.log(np.asarray(y, dtype=float)) - np.log(fit.law.predict(X))
    n, p = len(r), len(fit.form.params)
    return float(n * math.log(max(float(np.mean(r ** 2)), 1e-300)) + p * math.log(n))


def extrapolation_score(entry: LawEntry, inputs, key: str = "mape") -> float | None:
    """Geometric mean over INPUTS of the entry's held-out MAPE (or, with KEY "noise_floor", of
    what seed noise alone costs there); None where one is missing."""
    checks = entry.extrapolation or {}
    values = [checks[k][key] for k in inputs if checks.get(k, {}).get(key) is not None]
    if not values or len(values) < len(inputs):
        return None
    return float(np.exp(np.mean(np.log(np.maximum(values, 1e-12)))))


def select(entries: Mapping[str, LawEntry]) -> tuple[str | None, str]:
    """(the selected form's name, why) among the candidate ENTRIES (fits.json's)."""
    ok = {k: e for k, e in entries.items() if e.ok and e.bic is not None}
    if not ok:
        return None, "no candidate form fitted"
    if len(ok) == 1:
        return next(iter(ok)), "the only form that fitted"
    held = set.intersection(*[{k for k, v in (e.extrapolation or {}).items()
                               if "mape" in v} for e in ok.values()])
    scores = {k: extrapolation_score(e, sorted(held)) for k, e in ok.items()} if held else {}
    if scores and all(v is not None for v in scores.values()):
        best = min(scores.values())
        noise = extrapolation_score(next(iter(ok.values())), sorted(held), "noise_floor") or 0.0
        reach = max(best * (1 + EXTRAPOLATION_TOLERANCE), best + noise)
        keep = {k for k, v in scores.items() if v <= reach}
        name = min(keep, key=lambda k: ok[k].bic)
        why = (f"extrapolates as well as the best (held-out MAPE {scores[name]:.3g} against "
               f"{best:.3g}, within {reach:.3g}: 10 % or one noise floor) and has the lowest BIC "
               f"of those ({ok[name].bic:.4g})")
        return name, why
    name = min(ok, key=lambda k: ok[k].bic)
    return name, f"lowest BIC ({ok[name].bic:.4g}); no extrapolation check to compare"
