"""Blocks of the report that may fail to draw: a figure rendered to PNG now, or a note naming
what could not be drawn and why -- a report of a half-finished or older OUT is the point, so a
part whose inputs are malformed says so instead of raising."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

from raysweep.report.figures import DPI
from raysweep.report.render import Image, Note

NOT_DRAWN = ("{what} could not be drawn ({err}): the results, fits.json or boundary.json behind it "
             "are not in the form the report expects.")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))


# What malformed input (a law missing a term, an input named differently) raises while drawing.
INPUT_ERRORS = (ValueError, KeyError, TypeError, IndexError, ArithmeticError)


def guarded(what: str, build: Callable[[], list]) -> list:
    """The blocks `build` returns, or a note naming what could not be built and why."""
    try:
        return build()
    except INPUT_ERRORS as err:
        return [Note(NOT_DRAWN.format(what=what, err=f"{type(err).__name__}: {err}"))]


def figure(name: str, caption: str, draw: Callable, wide: bool = False) -> list:
    """[the drawn figure, rendered to PNG now] (fixed size, no tight bbox: the tests read the size
    from FIG_SIZES_IN), or [a note] when the inputs do not let it be drawn."""
    def render() -> list:
        buf = io.BytesIO()
        draw().savefig(buf, format="png", dpi=DPI)
        return [Image(slug(name), caption, buf.getvalue(), wide)]
    return guarded(f"Figure {slug(name)}", render)
