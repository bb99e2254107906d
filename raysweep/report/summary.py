"""What the commands print once the trials are done: the fits written to OUT and the report's own
tables of them (laws, cautions, extrapolation, lack of fit, boundary, Theorem 1 measured) as plain
text, so the terminal and the report show the same numbers in the same form."""

from __future__ import annotations

from raysweep.laws import study
from raysweep.report import tables
from raysweep.report.render import to_text
from raysweep.store import layout


def summarize(out: str, bootstrap: int = study.DEFAULT_BOOTSTRAP, seed: int = 0,
              table=None) -> str:
    """Fit OUT's results (TABLE, when already read), write OUT/fits.json and OUT/boundary.json,
    return the printed tables."""
    fits, slices = study.write_fits(out, bootstrap, seed, table)
    if not fits["downstream"]:
        return f"no ok fine-tuning or distillation results under {out} yet: nothing to fit"
    shown = [tables.exponents_table(fits), tables.coefficients_table(fits),
             tables.cautions_table(fits), tables.extrapolation_table(fits),
             tables.lack_of_fit_table(fits), tables.boundary_table(slices),
             tables.theorem1_table(slices)]
    return "\n\n".join([to_text(t) for t in shown]
                       + [f"wrote {out}/{layout.FITS} and {out}/{layout.BOUNDARY}"])
