"""How a boundary's 95 % interval is read off a bootstrap ensemble (laws/boundary.py).

A member's D**p is where its F = E_plain - E_distilled turns from + to - inside the plausible Dp
range. A member with no such turn still says where its crossing lies: above the range where F is
still positive at the top (distillation still wins there), below it where F is not (it was
never positive: plain wins throughout). Leaving such members out (the percentile over the
members that cross) made an interval that ends inside the range while a tenth of the members say
"beyond it"; counting them as 0 or inf makes the interval open on that side exactly when more
than one tail's share (2.5 %) of the members sit there.

Three rules read the interval off the members (boundary.CROSS_INTERVALS; the percentile is the
default, as it covered known truths as well as the others: BENCHMARKS.md, "Law forms (issue 35)"):
- the percentile interval (open_percentile);
- BCa (bias-corrected and accelerated; Efron 1987, Efron & Tibshirani 1993 ch. 14): the percentile
  interval read at levels moved by z0, the bias (the share of members below the point fit's
  D**p), and a, the acceleration (how the spread grows with the value; the skewness of a
  jackknife's values). a comes from a delete-a-group jackknife of each boundary law
  (laws/fitting.py `jackknife_groups`), the other law held at its point fit: the two laws' rows
  are independent samples, and for such stratified data a is the skewness of the influence
  values scaled by 1/n per sample, which is what pooling the samples' U's computes. Where z0 or
  a is undefined (every member on one side of the point fit; a jackknife law that does not
  cross; no spread among them; 1 - a (z0 + z) <= 0) the percentile interval is read instead.
  Why it is not the default: the law's log residuals are symmetric, so the jackknife's a is near
  0 and its sign varies, while z0 moved the interval away from known truths as often as
  towards them: it added noise;
- the standard interval on the log scale (normal_log_interval).

Left out: the model-free crossing's draws (laws/measured.py) keep the percentile over the draws
that cross, with the share that do not; reading it open above is Slice.measured_interval's.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from raysweep.laws.fitting import TAILS


def beyond_range(crosses: np.ndarray, top: np.ndarray) -> np.ndarray:
    """CROSSES (nan where a member has no + to - turn in the plausible range) with each such
    member placed by F at the top of the range, TOP: F > 0 there (distillation still wins: F
    never turned, or turned - to + only) puts the crossing above the range, inf; F <= 0 (with no
    + to - turn, F was never positive: plain wins throughout) below it, 0; nan where F is
    undefined there (a wild member: no answer)."""
    with np.errstate(invalid="ignore"):
        placed = np.where(top > 0, np.inf, np.where(top <= 0, 0.0, np.nan))
    return np.where(np.isnan(crosses), placed, crosses)


def open_percentile(values: np.ndarray, levels=TAILS) -> tuple[float, float] | None:
    """The 95 % percentile interval of VALUES (images; 0 and inf for members below and above the
    range, nan left out), read at LEVELS (percent), linear between ranks as numpy's; an end whose
    ranks reach a 0 or an inf member is open (0 or inf): with 100 members at TAILS, 3 or more
    beyond an end, over 2.5 %."""
    v = np.sort(values[~np.isnan(values)])
    if not v.size:
        return None
    ends = []
    for q in levels:
        pos = q / 100 * (v.size - 1)
        a, b, t = v[math.floor(pos)], v[math.ceil(pos)], pos - math.floor(pos)
        if a == 0 or math.isinf(b) or a == b:
            ends.append(float(a if a == 0 or a == b else b))
        else:   # numpy's linear interpolation, to the last bit
            ends.append(float(a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)))
    return ends[0], ends[1]


def bca_interval(values: np.ndarray, point: float, jackknife) -> tuple[float, float] | None:
    """The BCa 95 % interval of VALUES (as open_percentile's) around the point fit's POINT
    (images), its acceleration from JACKKNIFE (one array of jackknife values per independent
    sample, images); the percentile interval where z0 or a is undefined (module docstring)."""
    z0, a = bias_z0(values, point), acceleration(jackknife)
    levels = None if z0 is None or a is None else bca_levels(z0, a)
    return open_percentile(values, levels or TAILS)


def normal_log_interval(values: np.ndarray, point: float, jackknife=None
                        ) -> tuple[float, float] | None:
    """POINT x exp(-+z sd) (images), sd that of the crossing members' log D**p and z the normal
    quantile of TAILS: the standard interval on the log scale, centred on the point fit where the
    percentile one follows the members. An end is open where open_percentile's is (over a tail's
    share of the members beyond it); the percentile interval where POINT does not cross or fewer
    than 2 members do. JACKKNIFE unused (the boundary's rules share one signature)."""
    ends = open_percentile(values)
    logs = np.log(values[(values > 0) & np.isfinite(values)])
    if ends is None or not 0 < point < math.inf or logs.size < 2:
        return ends
    half = float(special.ndtri(TAILS[1] / 100)) * float(np.std(logs, ddof=1))
    return (0.0 if ends[0] == 0 else point * math.exp(-half),
            math.inf if math.isinf(ends[1]) else point * math.exp(half))


def bias_z0(values: np.ndarray, point: float) -> float | None:
    """Phi^-1 of the share of VALUES (nan left out; 0 and inf count on their side) below POINT,
    ties counted half; None where POINT is not a crossing (0 or inf) or every member lies on one
    side of it (z0 infinite)."""
    v = values[~np.isnan(values)]
    if not v.size or not 0 < point < math.inf:
        return None
    share = (np.sum(v < point) + 0.5 * np.sum(v == point)) / v.size
    return float(special.ndtri(share)) if 0 < share < 1 else None


def acceleration(jackknife) -> float | None:
    """a = sum U^3 / (6 (sum U^2)^1.5), U = mean - value of each sample's jackknife values (log
    images, where the statistic is nearer linear in the data), pooled over the samples; None
    without a jackknife, where a value is not a crossing or where none differs. Scale-free, so a
    delete-a-group jackknife's (K - 1) factor on U cancels."""
    if not jackknife:
        return None
    u = []
    for values in jackknife:
        values = np.asarray(values, dtype=float)
        if not values.size or not np.all((values > 0) & np.isfinite(values)):
            return None
        logs = np.log(values)
        u.append(logs.mean() - logs)
    u = np.concatenate(u)
    spread = float(np.sum(u ** 2))
    return float(np.sum(u ** 3) / (6 * spread ** 1.5)) if spread > 0 else None


def bca_levels(z0: float, a: float) -> tuple[float, float] | None:
    """The percent levels Phi(z0 + (z0 + z) / (1 - a (z0 + z))) at which BCa reads the members,
    z the normal quantiles of TAILS; None where a denominator is not positive (a too large for
    the interval to be defined)."""
    out = []
    for q in TAILS:
        w = z0 + float(special.ndtri(q / 100))
        if 1 - a * w <= 0:
            return None
        out.append(100 * float(special.ndtr(z0 + w / (1 - a * w))))
    return out[0], out[1]


def holding(name: str, value: float, ci: tuple[float, float] | None) -> dict:
    """{NAME_ci} holding the point fit's VALUE: where the point fit is atypical of its resamples
    (e.g. it crosses outside the measured range while the members that cross do so inside), the
    answer stays the point fit's and its interval is widened to hold it, with a note, so an
    estimate is never outside its own interval. A point fit that does not cross (0 or inf) opens
    the interval on its side without a note."""
    if ci is None or ci[0] <= value <= ci[1]:
        return {f"{name}_ci": ci}
    wide = (min(ci[0], value), max(ci[1], value))
    if not 0 < value < math.inf:
        return {f"{name}_ci": wide}
    return {f"{name}_ci": wide,
            f"{name}_note": (f"the point fit gives {value:.4g}, outside the bootstrap members' "
                             f"95 % interval [{ci[0]:.4g}, {ci[1]:.4g}]; the interval is "
                             f"widened to include it")}
