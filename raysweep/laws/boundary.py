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
- beside them, what the seed replicates say without a law (laws/measured.py): the model-free
  crossing with its interval, and Theorem 1's pattern at the two ends of the measured Dp.

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
from scipy import optimize

from raysweep.laws.fitting import Fit, Law, percentile
from raysweep.laws.measured import measured_ends, model_free, paired_by_dp

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
        ci = percentile(members) if value is not None else None
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
