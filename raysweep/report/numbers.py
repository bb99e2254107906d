"""How the report writes a number: 3 significant digits everywhere (`fmt`), intervals in
brackets, amounts of images or parameters as '2.99k' -- so a value from fits.json reads the same in
every table."""

from __future__ import annotations

import math

from raysweep.report.figures import short

DASH = "—"


def fmt(x) -> str:
    """3 significant digits for floats, digits for ints, a dash for nothing or NaN."""
    if x is None or isinstance(x, bool):
        return DASH if x is None else str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return DASH
    return f"{x:.3g}"


def percent(share) -> str:
    return DASH if share is None else f"{fmt(100 * share)} %"


def fmt_ci(ci) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci and len(ci) == 2 else ""


def with_ci(value, ci) -> str:
    return f"{fmt(value)} {fmt_ci(ci)}".strip()


def images(x) -> str:
    """An amount of images or parameters for a table: '2.99k', '1.28M'; a dash for nothing."""
    return DASH if x is None else short(x)


def images_ci(value, ci) -> str:
    """'403k [232k, 635k]'; an end at 0 or infinity (an interval open there) reads 'open'."""
    def end(x):
        return "open" if x is not None and (x == 0 or math.isinf(x)) else images(x)
    inner = f" [{end(ci[0])}, {end(ci[1])}]" if ci and len(ci) == 2 else ""
    return images(value) + (inner if value is not None else "")


