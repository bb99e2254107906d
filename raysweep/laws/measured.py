"""The distillation boundary without the laws: what a slice's seed replicates alone say.

- the paired differences (paired_by_dp): plain minus distilled error of each seed run both ways,
  per Dp.
- the model-free crossing (model_free): where the seed-averaged differences turn from + to -,
  interpolated in log Dp, with a 95 % interval from the seeds: each Dp's spread of the
  differences, moderated towards the slice's common one (spread_draws), and each posterior draw
  of the Dp means gives a crossing (or none).
- Theorem 1's pattern (measured_ends): the difference at the smallest and the largest measured
  Dp with the standard error over seeds; the pattern shows when distillation helps at the
  smallest Dp and hurts at the largest, each by more than SIGNIFICANT_SE of them.
laws/boundary.py puts these beside each slice's law-based D*p and D**p (docs/boundary.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import special

from raysweep.laws.fitting import percentile

# A measured advantage counts as a sign when it is more than this many standard errors of the
# seed replicates away from 0 (issue 14's test of Theorem 1: two, a ~95 % two-sided level).
SIGNIFICANT_SE = 2.0
MODEL_FREE_DRAWS = 2000   # draws of the Dp means behind the model-free crossing's interval


def model_free_cross(dp: np.ndarray, diff: np.ndarray) -> float | None:
    """First Dp where the measured plain-minus-distilled error turns from + to -, interpolated
    linearly in log Dp between the bracketing measured values; None when it never does."""
    dp, diff = np.asarray(dp, dtype=float), np.asarray(diff, dtype=float)
    order = np.argsort(dp)
    cross = first_turns(dp[order], diff[order][None, :])[0]
    return None if math.isnan(cross) else float(cross)


def first_turns(dp: np.ndarray, diffs: np.ndarray) -> np.ndarray:
    """model_free_cross of every row of DIFFS (rows, Dp values) at increasing DP at once; NaN
    where a row never turns + to -."""
    turn = (diffs[:, :-1] > 0) & (diffs[:, 1:] <= 0)
    i = turn.argmax(axis=1)
    rows = np.arange(diffs.shape[0])
    a, b = diffs[rows, i], diffs[rows, i + 1]
    log_dp = np.log(dp)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # rows with no turn
        t = a / (a - b)   # share of the log-Dp step where the line hits 0
        cross = np.exp(log_dp[i] + t * (log_dp[i + 1] - log_dp[i]))
    return np.where(turn.any(axis=1), cross, np.nan)


def model_free(per_dp: Mapping[float, list[float]], draws: int = MODEL_FREE_DRAWS,
               seed: int = 0, pool: bool = False) -> dict:
    """The model-free crossing of PER_DP (Dp -> paired differences, one per seed) with a 95 %
    interval from the seeds alone: {"model_free_cross", "model_free_cross_ci",
    "model_free_no_cross_fraction", "model_free_spread"} and a "model_free_note" where the
    interval is missing or widened.

    The paired differences at a Dp are taken as normal with the Dp's own mean and spread. Each
    draw takes every Dp's variance from its posterior (spread_draws: each Dp's own, moderated
    towards the slice's common one as far as the spreads' scatter warrants), then each mean as
    N(m_i, var_i / n_i), the posterior of the means under a flat prior, and finds the draw's
    first + to - turn; the interval is the percentile one over the draws that turn,
    `model_free_no_cross_fraction` the share that do not. Seeded, so the same rows give the same
    interval. POOL: one variance for all Dp values whatever their spreads (the estimator before
    moderation, kept for the benchmark that compares them)."""
    dp = np.array(sorted(per_dp), dtype=float)
    vals = [np.asarray(per_dp[d], dtype=float) for d in sorted(per_dp)]
    means = np.array([v.mean() for v in vals])
    out = {"model_free_cross": None, "model_free_cross_ci": None,
           "model_free_no_cross_fraction": None, "model_free_spread": None}
    if dp.size < 2:
        return out
    out["model_free_cross"] = cross = model_free_cross(dp, means)
    if not any(v.size > 1 for v in vals):
        return out | {"model_free_note": "one seed per Dp: no spread to draw an interval from"}
    rng = np.random.default_rng(seed)
    var, out["model_free_spread"] = spread_draws(vals, draws, rng, pool)
    n = np.array([v.size for v in vals], dtype=float)
    drawn = means + rng.standard_normal((draws, dp.size)) * np.sqrt(var / n)
    members = first_turns(dp, drawn)
    out["model_free_no_cross_fraction"] = float(np.isnan(members).mean())
    if cross is not None:
        ci = percentile(list(members[~np.isnan(members)]))
        if ci is not None and not ci[0] <= cross <= ci[1]:
            out["model_free_note"] = (f"the measured means cross at {cross:.4g}, outside the "
                                      f"draws' 95 % interval [{ci[0]:.4g}, {ci[1]:.4g}]; the "
                                      f"interval is widened to include it")
            ci = [min(ci[0], cross), max(ci[1], cross)]
        out["model_free_cross_ci"] = ci
    return out


def spread_draws(vals: list[np.ndarray], draws: int, rng: np.random.Generator,
                 pool: bool = False) -> tuple[np.ndarray, str]:
    """((DRAWS, Dp values) posterior draws of each Dp's variance of the paired differences, how
    they were drawn). Two seeds a Dp give a variance on one degree of freedom; one spread for the
    whole slice is wrong where the seeds' spread differs by Dp (measured on the default, 4 heads
    <- 2 at Df 10 after two adaptive rounds: sd 0.045 at Dp 512, 0.001 and 0.002 at the Dp 45 and
    64 around the crossing, so a pooled spread carries the large Dp's noise into the bracket).
    So the spreads are moderated (Smyth 2004, the empirical-Bayes variances of limma): the per-Dp
    sample variances s_i^2 on d_i = n_i - 1 degrees of freedom are taken as scaled-inverse-chi^2
    draws around a common s_0^2 on d_0 prior degrees of freedom, both estimated from the scatter
    of log s_i^2 beyond what d_i alone explains; each Dp's variance is then drawn from
    (d_0 s_0^2 + d_i s_i^2) / chi^2_(d_0 + d_i). When the s_i^2 scatter no more than sampling
    explains (d_0 infinite), or fewer than two Dp values have a spread, one variance is shared by
    all Dp values, drawn as s_pooled^2 dof / chi^2_dof over the summed degrees of freedom."""
    d = np.array([v.size - 1 for v in vals], dtype=float)
    ss = np.array([float(((v - v.mean()) ** 2).sum()) for v in vals])
    has = (d > 0) & (ss > 0)
    prior = None if pool else _variance_prior(ss[has] / d[has], d[has])
    if prior is None:
        dof = d.sum()
        return (np.repeat(ss.sum() / rng.chisquare(dof, size=(draws, 1)), d.size, axis=1),
                f"pooled over the slice's Dp values ({dof:g} degrees of freedom)")
    d0, s0 = prior
    how = f"per Dp, moderated (common sd {math.sqrt(s0):.3g} on {d0:.3g} prior degrees of freedom)"
    return (d0 * s0 + ss) / rng.chisquare(d0 + d, size=(draws, d.size)), how


def _variance_prior(s2: np.ndarray, d: np.ndarray) -> tuple[float, float] | None:
    """(d_0, s_0^2) of the scaled-inverse-chi^2 prior behind sample variances S2 on D degrees
    of freedom, by the moments of log s^2 (Smyth 2004, sec. 6.2); None when fewer than two are
    given or their scatter is no more than sampling's (d_0 infinite: one common variance)."""
    if s2.size < 2:
        return None
    e = np.log(s2) - special.digamma(d / 2) + np.log(d / 2)
    excess = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, d / 2)))
    if excess <= 0:
        return None
    d0 = 2 * _trigamma_inverse(excess)
    return d0, float(np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2)))


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by Newton's method from 0.5 + 1/x (Smyth 2004's algorithm)."""
    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def paired_by_dp(plain: list[dict], distilled: list[dict]) -> dict[float, list[float]]:
    """Dp -> plain minus distilled error of each seed run both ways (a seed's repeated rows are
    averaged first), in increasing Dp; a Dp measured only one way is left out."""
    def by_dp_seed(rs):
        acc: dict[tuple, list[float]] = {}
        for r in rs:
            if r.get("error") is not None:
                acc.setdefault((r["dp"], r["seed"]), []).append(r["error"])
        return {k: float(np.mean(v)) for k, v in acc.items()}
    mine, theirs = by_dp_seed(plain), by_dp_seed(distilled)
    per_dp: dict[float, list[float]] = {}
    for key in sorted(set(mine) & set(theirs)):
        per_dp.setdefault(key[0], []).append(mine[key] - theirs[key])
    return per_dp


def _end(dp: float, diffs: list[float]) -> dict:
    n = len(diffs)
    se = float(np.std(diffs, ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"dp": dp, "mean": float(np.mean(diffs)), "se": se, "seeds": n}


def measured_ends(per_dp: Mapping[float, list[float]]) -> dict:
    """Theorem 1's pattern in the measurements alone: {"measured_ends": {"smallest": end,
    "largest": end} with end = {dp, mean, se, seeds} of the paired differences, "theorem1": True
    when distillation helps at the smallest Dp and hurts at the largest, each by more than
    SIGNIFICANT_SE standard errors; False when not; None when it cannot be told (fewer than two
    Dp values, or one seed at an end: no standard error)}."""
    if len(per_dp) < 2:
        return {"measured_ends": None, "theorem1": None}
    lo, hi = min(per_dp), max(per_dp)
    ends = {"smallest": _end(lo, per_dp[lo]), "largest": _end(hi, per_dp[hi])}
    small, large = ends["smallest"], ends["largest"]
    shown = None
    if small["se"] is not None and large["se"] is not None:
        shown = bool(small["mean"] > SIGNIFICANT_SE * small["se"]
                     and large["mean"] < -SIGNIFICANT_SE * large["se"])
    return {"measured_ends": ends, "theorem1": shown}
