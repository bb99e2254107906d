"""How well a fitted law describes its rows, judged two ways (docs/design.md §6):

- the extrapolation check: refit without the rows at an input's largest value, predict them
  (how far the law carries past the data it saw); each held-out row carries its seed's noise,
  so even the true law scores a MAPE of ~0.8 seed sd there (`noise_floor`, from the held-out
  rows' own replicates);
- the lack-of-fit test: each grid point's seed-averaged measurement against the law, compared
  with how far the seeds scatter around that average (the classical pure-error F test of
  regression with replicates; Draper & Smith, "Applied Regression Analysis", 3rd ed., §2.1). With
  no misfit the law misses a point's mean by about what the noise of a mean explains, and
  F = (SS_lof / df_lof) / (SS_pe / df_pe) follows F(df_lof, df_pe); a large F says the law's form,
  not the seeds' noise, limits the fit, so more seeds will not bring the law closer to the rows;
  `largest_miss` says where (a cell of one or two inputs' values).

Both work in the law's own space, log y (fitting.py): a miss of 0.07 there is a 7 % error.

The F test assumes least squares; the laws are fitted with a Huber loss whose threshold (1e-3)
makes it nearly least absolute deviations in log space, and the law such a fit finds sits a
little further from the point means than the least-squares one would, so the F reported leans
towards finding a misfit; tests/benchmarks/bench_lack_of_fit.py measures how far, with the law
true, the share of draws that say "misfit" exceeds the nominal 5 % (BENCHMARKS.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import special, stats

from raysweep.laws.fitting import LEVEL, fit_form
from raysweep.laws.form import Form
from raysweep.laws.law import Law, additive_form

MISFIT_P = (100.0 - LEVEL) / 100  # a p-value under this: the law's form misses the rows


# ---- the extrapolation check ---------------------------------------------------------------

def extrapolation_check(X: Mapping[str, np.ndarray], y: np.ndarray, *,
                        inputs: Sequence[str] | None = None, starts=None,
                        floor: bool = True, form: Form | None = None) -> dict:
    """Per input: refit FORM (default: the paper's on X's columns, with or without a FLOOR) on
    all of X without the rows at that input's largest value, then predict them. {input: {"held_out", "mape" (mean
    |pred - y| / y), "max_abs", "noise_floor" (the MAPE the held-out rows' own seed spread costs an
    exactly right law; None without replicates among them)}} or {"skipped": why}."""
    form = form or additive_form(list(X), floor)
    cols = {k: np.asarray(X[k], dtype=float) for k in form.inputs}
    y = np.asarray(y, dtype=float)
    return {name: _hold_out_largest(cols, y, name, starts, form)
            for name in (inputs or list(cols))}


def _hold_out_largest(cols: dict, y: np.ndarray, name: str, starts, form: Form) -> dict:
    if name not in cols:
        return {"skipped": f"{name!r} is not an input of the fit ({sorted(cols)})"}
    held = cols[name] == cols[name].max()
    kept = ~held
    if np.unique(cols[name][kept]).size < 2:
        return {"skipped": f"{np.unique(cols[name]).size} distinct value(s) of {name}; "
                           f"2 must remain after holding out the largest"}
    p = len(form.params)
    if kept.sum() < p:
        return {"skipped": f"{kept.sum()} rows remain for {p} parameters"}
    try:
        law = fit_form(form, {k: v[kept] for k, v in cols.items()}, y[kept], starts=starts).law
    except ValueError as err:  # e.g. another input left with one value: report, don't crash
        return {"skipped": str(err)}
    pred = law.predict({k: v[held] for k, v in cols.items()})
    abs_err = np.abs(pred - y[held])
    spread = seed_sd({k: v[held] for k, v in cols.items()}, y[held])
    return {"held_out": int(held.sum()), "mape": float(np.mean(abs_err / y[held])),
            "max_abs": float(abs_err.max()),
            "noise_floor": None if spread is None else noise_floor(spread)}


def noise_floor(seed_sd: float) -> float:
    """The MAPE that a law exactly right on average scores against single rows whose log
    scatters N(0, SEED_SD) around it: E|e^x - 1| = e^(s^2 / 2) erf(s / sqrt 2) ~ 0.8 s. On
    average no law scores below it; a MAPE near it is as good as the rows can show."""
    return float(np.exp(seed_sd ** 2 / 2) * special.erf(seed_sd / np.sqrt(2)))


# ---- the lack-of-fit test ------------------------------------------------------------------

def lack_of_fit(X: Mapping[str, np.ndarray], y: np.ndarray, law: Law) -> dict:
    """The pure-error F test of LAW on the rows (X, y), rows with equal inputs being replicates.

    {"points", "replicated" (points measured more than once), "df": [df_lof, df_pe], "misfit"
    (rms over points of log mean - log law), "noise" (what noise alone gives that rms: the
    replicates' sd of one row over sqrt of each point's count, rms over points), "seed_sd" (sd of
    one row around its point's mean), "F", "p", "misfits" (p < MISFIT_P), "largest_miss"}, all in
    log y; or
    {"skipped": why} where the rows have no replicate or no point more than the law's
    parameters (its form's count)."""
    names = list(law.form.inputs)
    points, counts, means, ss_pe, df_pe = _replicates({k: X[k] for k in names},
                                                      np.log(np.asarray(y, dtype=float)))
    df_lof = len(points) - len(law.form.params)
    if df_pe < 1:
        return {"skipped": "no grid point was measured twice (one seed): no replicate spread to "
                           "judge the law against"}
    if df_lof < 1:
        return {"skipped": f"{len(points)} grid points for {len(points) - df_lof} parameters"}
    miss = means - np.log(law.predict(dict(zip(names, points.T))))
    ss_lof = float(np.sum(counts * miss ** 2))
    seed_var = ss_pe / df_pe
    f = (ss_lof / df_lof) / seed_var if seed_var > 0 else np.inf
    p = float(stats.f.sf(f, df_lof, df_pe))
    return {"points": len(points), "replicated": int(np.sum(counts > 1)), "df": [df_lof, df_pe],
            "misfit": float(np.sqrt(np.mean(miss ** 2))),
            "noise": float(np.sqrt(seed_var * np.mean(1.0 / counts))),
            "seed_sd": float(np.sqrt(seed_var)), "F": float(f), "p": p, "misfits": p < MISFIT_P,
            "largest_miss": largest_miss(names, points, counts, miss, seed_var)}


def largest_miss(names: Sequence[str], points: np.ndarray, counts: np.ndarray, miss: np.ndarray,
                 seed_var: float) -> dict:
    """Where the law misses its rows most: among the cells of one input's value and of two
    inputs' values (e.g. 2 heads at Dp 8, over every Df), the one whose mean miss (log y - log
    law, rows weighted alike) is largest against its own seed noise. {"at": {input: value},
    "miss", "se" (seed sd / sqrt of the cell's rows)}. Descriptive, not a test (the F test
    judges); it names the interaction or the edge that a sum of one term per input cannot draw."""
    best, found = -1.0, {}
    for width in (1, 2):
        for combo in itertools.combinations(range(len(names)), width):
            cells, where = np.unique(points[:, combo], axis=0, return_inverse=True)
            rows = np.bincount(where.ravel(), weights=counts)
            mean = np.bincount(where.ravel(), weights=counts * miss) / rows
            se = np.sqrt(seed_var / rows)
            score = np.abs(mean) / np.maximum(se, 1e-12)
            i = int(np.argmax(score))
            if score[i] > best:
                best = score[i]
                found = {"at": {names[j]: float(v) for j, v in zip(combo, cells[i])},
                         "miss": float(mean[i]), "se": float(se[i])}
    return found


def seed_sd(X: Mapping[str, np.ndarray], y: np.ndarray) -> float | None:
    """The sd of one row's log y around its grid point's mean (rows with equal X are
    replicates), pooled over the points; None where no point was measured twice."""
    _, _, _, ss_pe, df_pe = _replicates(X, np.log(np.asarray(y, dtype=float)))
    return float(np.sqrt(ss_pe / df_pe)) if df_pe else None


def _replicates(X: Mapping[str, np.ndarray], logy: np.ndarray):
    """(distinct input points (m, k), rows per point, mean log y per point, the pure-error sum
    of squares (rows around their point's mean), its degrees of freedom n - m)."""
    keys = np.column_stack([np.asarray(v, dtype=float) for v in X.values()])
    points, where, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    where = where.ravel()
    means = np.bincount(where, weights=logy) / counts
    return points, counts, means, float(np.sum((logy - means[where]) ** 2)), len(logy) - len(points)
