"""The distillation boundary of the paper's sec. 4, per slice (downstream, student, teachers, Df).

F(Dp) = E_plain(Dp) - E_distilled(Dp), both fitted laws evaluated at the slice's student size,
Df and mean teacher size. Positive F: distillation gives the lower error.
- D*p, where F peaks. Only the Dp terms depend on Dp, so with c = coef (= 1/lambda) and primes for
  the distilled law, F'(Dp) = 0 gives D*p = (alpha' c'_p / (alpha c_p))^(1/(alpha' - alpha)). The
  printed eq. 14 has the ratio upside down (docs/boundary.md has the derivation).
- D**p, the root of F where it turns from + (distillation wins) to - (plain wins), found by brentq
  in log Dp inside a plausible range (measured range widened by DP_RANGE_FACTOR each side).
- intervals: both over the paired bootstrap ensembles (member i of one law with member i of the
  other), percentile 95 %, with the share of members that do not cross.
- a model-free crossing: where the measured, seed-averaged paired difference changes sign, with
  an interval from the seed replicates alone (model_free below): each Dp's spread of the paired
  differences, moderated towards the slice's common one, and each draw of the Dp means from them
  gives a crossing (or none).
- Theorem 1's pattern, measured without the laws: the paired difference at the smallest and the
  largest measured Dp with the standard error over seeds; the pattern shows when distillation
  helps at the smallest Dp and hurts at the largest, each by more than SIGNIFICANT_SE of them.

Status vocabulary (what a reader of boundary.json sees; `STATUS` below):
  "ok"                                  D**p found inside the measured Dp range
  "no crossing in measured range (laws cross at N outside)"   found only outside it
  "no crossing"                         F does not turn + to - in the plausible range
  "too few Dp values (N)"               < 2 distinct Dp measured both ways (same seed) in the slice
  "no plain rows"                       the student was never fine-tuned plainly at this Df
  "law not fitted: <law>: <why>"         a law the slice needs has no fit
Left out: slices over teacher sets (each teacher set is its own slice, as in the paper's Fig. 6).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
from scipy import optimize, special

from raysweep.laws.fitting import LEVEL, Fit, Law

DP = "dp"                 # the input the boundary is over (pretraining images)
DP_RANGE_FACTOR = 100.0   # plausible range: [min measured / 100, max measured * 100] images
SCAN_POINTS = 400         # log-spaced Dp values scanned for a sign change before brentq
STATUS = {
    "ok": "ok",
    "outside": "no crossing in measured range (laws cross at {dp:.4g} outside)",
    "none": "no crossing",
    "few_dp": "too few Dp values ({n})",
    "no_plain": "no plain rows",
    "unfitted": "law not fitted: {law}: {why}",
}
# A measured advantage counts as a sign when it is more than this many standard errors of the
# seed replicates away from 0 (issue 14's test of Theorem 1: two, a ~95 % two-sided level).
SIGNIFICANT_SE = 2.0
MODEL_FREE_DRAWS = 2000   # draws of the Dp means behind the model-free crossing's interval
# Every slice has these keys (None / False until found); "dp_range" when computed, and a
# "d_star_note" / "d_cross_note" where a value is missing or its interval had to be widened.
EMPTY = {"d_star": None, "d_star_ci": None, "d_cross": None, "d_cross_ci": None,
         "model_free_cross": None, "model_free_cross_ci": None,
         "model_free_no_cross_fraction": None, "model_free_spread": None,
         "no_cross_fraction": None, "no_peak_fraction": None,
         "in_range": False, "measured_ends": None, "theorem1": None}


def d_star(plain: Law, distilled: Law) -> float | None:
    """Dp (images) where F peaks, or None when F has no interior maximum."""
    return _d_star(plain, distilled)[0]


def _d_star(plain: Law, distilled: Law) -> tuple[float | None, str]:
    """(D*p, why not). F'(D) = D^(-alpha-1) * (alpha' c' D^(alpha - alpha') - alpha c): zero where
    D^(alpha - alpha') = alpha c / (alpha' c'); a maximum where the bracket falls through zero,
    i.e. alpha' c' (alpha - alpha') < 0."""
    if DP not in plain.terms or DP not in distilled.terms:
        return None, "a law has no Dp term, so F is monotone in Dp"
    (c, a), (c2, a2) = plain.terms[DP], distilled.terms[DP]
    if a == a2:
        return None, "equal Dp exponents: F is monotone in Dp"
    ratio = (a2 * c2) / (a * c) if a * c != 0 else math.inf
    if not (0 < ratio < math.inf):
        return None, "F' has no zero in Dp > 0"
    if a2 * c2 * (a - a2) >= 0:
        return None, "F' changes sign - to +: a minimum, not a peak"
    try:
        return float(ratio ** (1.0 / (a2 - a))), ""
    except OverflowError:  # exponents a hair apart (a bootstrap resample can do it)
        return None, "F peaks beyond any representable Dp: the Dp exponents nearly coincide"


def advantage(plain: Law, distilled: Law, fixed: Mapping[str, float], dp) -> np.ndarray:
    """F(Dp) = E_plain - E_distilled at DP images, other inputs from FIXED (error units)."""
    x = dict(fixed) | {DP: np.asarray(dp, dtype=float)}
    return plain.predict(x) - distilled.predict(x)


def d_cross(plain: Law, distilled: Law, fixed: Mapping[str, float],
            dp_range: tuple[float, float]) -> float | None:
    """Smallest Dp (images) in DP_RANGE where F turns from + to -, or None."""
    lo, hi = (math.log(v) for v in dp_range)
    grid = np.linspace(lo, hi, SCAN_POINTS)
    f = advantage(plain, distilled, fixed, np.exp(grid))
    turns = np.flatnonzero((f[:-1] > 0) & (f[1:] <= 0))
    if turns.size == 0:
        return None
    i = turns[0]
    if f[i + 1] == 0:
        return float(np.exp(grid[i + 1]))
    root = optimize.brentq(lambda u: float(advantage(plain, distilled, fixed, math.exp(u))),
                           grid[i], grid[i + 1], xtol=1e-12)
    return float(math.exp(root))


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
        ci = _percentile(list(members[~np.isnan(members)]))
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
    (d_0 s_0^2 + d_i s_i^2) / chi^2_(d_0 + d_i). When the s_i^2 scatter no more than sampling explains (d_0 infinite),
    or fewer than two Dp values have a spread, one variance is shared by all Dp values, drawn
    as s_pooled^2 dof / chi^2_dof over the summed degrees of freedom."""
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


def _percentile(values: list) -> list[float] | None:
    vals = [v for v in values if v is not None]
    tail = (100.0 - LEVEL) / 2
    return [float(q) for q in np.percentile(vals, [tail, 100 - tail])] if vals else None


def slice_boundary(plain: Fit, distilled: Fit, fixed: Mapping[str, float], measured_dp,
                   dp_range=None) -> dict:
    """D*p and D**p of the fitted laws, with intervals, and a status for one slice."""
    measured = np.unique(np.asarray(measured_dp, dtype=float))
    out = dict(EMPTY)
    if measured.size < 2:
        return out | {"status": STATUS["few_dp"].format(n=measured.size)}
    lo_meas, hi_meas = float(measured[0]), float(measured[-1])
    dp_range = dp_range or (lo_meas / DP_RANGE_FACTOR, hi_meas * DP_RANGE_FACTOR)
    star, why_no_star = _d_star(plain.law, distilled.law)
    cross = d_cross(plain.law, distilled.law, fixed, dp_range)
    out |= {"d_star": star, "d_cross": cross, "dp_range": list(dp_range),
            "in_range": cross is not None and lo_meas <= cross <= hi_meas}
    if why_no_star:
        out["d_star_note"] = why_no_star
    out |= _ensemble_intervals(plain, distilled, fixed, dp_range, star, cross)
    return out | {"status": _status(cross, out["in_range"])}


def _status(cross: float | None, in_range: bool) -> str:
    if cross is None:
        return STATUS["none"]
    return STATUS["ok"] if in_range else STATUS["outside"].format(dp=cross)


def _ensemble_intervals(plain: Fit, distilled: Fit, fixed, dp_range, star, cross) -> dict:
    """Percentile intervals over the members that have the value, given only where the point
    estimate exists (an interval around "no peak" would read as a peak); the shares of members
    without one are always given."""
    if not plain.ensemble or not distilled.ensemble:
        return {}
    pairs = list(zip(plain.ensemble, distilled.ensemble))  # member i with member i
    stars = [d_star(p, d) for p, d in pairs]
    crosses = [d_cross(p, d, fixed, dp_range) for p, d in pairs]
    out = {"no_cross_fraction": sum(c is None for c in crosses) / len(pairs),
           "no_peak_fraction": sum(s is None for s in stars) / len(pairs)}
    for name, value, members in (("d_star", star, stars), ("d_cross", cross, crosses)):
        ci = _percentile(members) if value is not None else None
        if ci is not None and not ci[0] <= value <= ci[1]:
            # The point fit is atypical of its resamples (e.g. it crosses outside the measured
            # range while the members that cross do so inside). The answer stays the point fit's,
            # and its interval is widened to hold it, so an estimate is never outside its own.
            out[f"{name}_note"] = (f"the point fit gives {value:.4g}, outside the bootstrap "
                                   f"members' 95 % interval [{ci[0]:.4g}, {ci[1]:.4g}]; the "
                                   f"interval is widened to include it")
            ci = [min(ci[0], value), max(ci[1], value)]
        out[f"{name}_ci"] = ci
    return out


# ---- every slice of a results table ----------------------------------------------------------

def ok_rows(rows) -> list[dict]:
    """OK rows of a results table (pyarrow.Table, dict of columns or list of dicts)."""
    if hasattr(rows, "to_pylist"):
        rows = rows.to_pylist()
    elif isinstance(rows, Mapping):
        rows = [dict(zip(rows, vals)) for vals in zip(*rows.values())]
    return [r for r in rows if r.get("status") == "ok" and r.get("error") is not None]


def slice_key(s: dict) -> tuple:
    """(downstream, student heads, teacher heads, Df): a slice of boundary.json's, or the slice of a
    distilled result row (whose student is its `heads`)."""
    student = s["student_heads"] if "student_heads" in s else s["heads"]
    return (s["downstream"], student, tuple(s["teacher_heads"] or ()), s["df"])


def distilled_by_slice(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Slice key -> its distilled rows."""
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["stage"] == "distill":
            out.setdefault(slice_key(r), []).append(r)
    return out


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


def boundaries(rows, fits: Mapping[str, Mapping[str, Fit | str]], dp_range=None) -> list[dict]:
    """One boundary dict per slice. FITS: downstream -> {"error": Fit or why-not string,
    "distilled_error": ...}. A thin or unfitted slice gets a status, never an exception."""
    ok = ok_rows(rows)
    dp_of = {r["trial_id"]: r["dp"] for r in ok if "trial_id" in r}
    out = []
    found = distilled_by_slice(ok)
    for key, distilled in sorted(found.items(), key=lambda kv: (str(kv[0][0]),) + kv[0][1:]):
        downstream, heads, teachers, df = key
        plain = [r for r in ok if r["stage"] == "finetune" and r["downstream"] == downstream
                 and r["heads"] == heads and r["df"] == df]
        head = {"downstream": downstream, "student_heads": heads, "teacher_heads": list(teachers),
                "df": df, "student_params": distilled[0]["params"],
                "teacher_params": float(np.mean([r["teacher_params"] for r in distilled])),
                "teacher_dp": reused_teacher_dp(distilled, dp_of)}
        out.append(head | _one_slice(head, plain, distilled, fits.get(downstream, {}), dp_range))
    return out


def reused_teacher_dp(distilled: list[dict], dp_of: Mapping[str, float]) -> float | None:
    """The one Dp the teachers of these distilled rows were pretrained on, when it is not the
    students' own (the sweep's `distill.teacher_dp`); None when teachers share their student's Dp
    or the rows do not say (no config, or teacher trials without a result)."""
    pairs = set()
    for r in distilled:
        config = json.loads(r["config"]) if r.get("config") else {}
        pairs |= {(r["dp"], dp_of.get(t)) for t in config.get("teacher_trials", [])}
    teacher = {t for _, t in pairs}
    if len(teacher) != 1 or None in teacher or all(s == t for s, t in pairs):
        return None
    return teacher.pop()


def _one_slice(head: dict, plain, distilled, laws: Mapping, dp_range) -> dict:
    if not plain:
        return EMPTY | {"status": STATUS["no_plain"]}
    per_dp = paired_by_dp(plain, distilled)
    measured = model_free(per_dp) | measured_ends(per_dp)   # these need no law
    for name in ("error", "distilled_error"):
        fit = laws.get(name, "no fit for this downstream set")
        if not isinstance(fit, Fit):
            return EMPTY | measured | {"status": STATUS["unfitted"].format(law=name, why=fit)}
    return (slice_boundary(laws["error"], laws["distilled_error"], fixed_inputs(head),
                           np.array(list(per_dp), dtype=float), dp_range) | measured)


def fixed_inputs(s: Mapping) -> dict:
    """The law inputs a slice (its boundary dict) holds fixed along Dp."""
    return {"params": s["student_params"], "df": s["df"], "teacher_params": s["teacher_params"]}
