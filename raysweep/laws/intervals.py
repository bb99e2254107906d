"""How a boundary's 95 % interval is read off a bootstrap ensemble (laws/boundary.py).

A member's D**p is where its F = E_plain - E_distilled turns from + to - inside the plausible Dp
range. A member with no such turn still says where its crossing lies: above the range where F is
still positive at the top (distillation still wins there), below it where F is not (it was
never positive: plain wins throughout). Leaving such members out (the percentile over the
members that cross) made an interval that ends inside the range while a tenth of the members say
"beyond it"; counting them as 0 or inf makes the interval open on that side exactly when more
than one tail's share (2.5 %) of the members sit there.

Left out: the model-free crossing's draws (laws/measured.py) keep the percentile over the draws
that cross, with the share that do not; reading it open above is Slice.measured_interval's.
"""

from __future__ import annotations

import math

import numpy as np

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


def open_percentile(values: np.ndarray) -> tuple[float, float] | None:
    """The 95 % percentile interval of VALUES (images; 0 and inf for members below and above the
    range, nan left out), linear between ranks as numpy's; an end whose ranks reach a 0 or an inf
    member is open (0 or inf): with 100 members, 3 or more beyond an end, over 2.5 %."""
    v = np.sort(values[~np.isnan(values)])
    if not v.size:
        return None
    ends = []
    for q in TAILS:
        pos = q / 100 * (v.size - 1)
        a, b, t = v[math.floor(pos)], v[math.ceil(pos)], pos - math.floor(pos)
        if a == 0 or math.isinf(b) or a == b:
            ends.append(float(a if a == 0 or a == b else b))
        else:   # numpy's linear interpolation, to the last bit
            ends.append(float(a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)))
    return ends[0], ends[1]


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
