"""What the commands print once the trials are done: the fits written to OUT, then what the study
found (raysweep.report.findings) in at most MAX_LINES lines of at most WIDTH columns -- a table
per downstream set of where plain training overtakes distillation, per student and Df, and a few
sentences -- so the answer fits the last screen. The report's full tables (laws, cautions,
extrapolation, lack of fit, boundary, Theorem 1 measured) are in report.md and, with --verbose,
printed before it, as plain text, so the terminal and the report show the same numbers.
"""

from __future__ import annotations

import textwrap

from raysweep.laws import study
from raysweep.laws.entries import entry
from raysweep.laws.slices import Slice
from raysweep.report import findings as found
from raysweep.report import reading, tables
from raysweep.report.inputs import read_optional, read_rows
from raysweep.report.render import to_text
from raysweep.store import layout

WIDTH = 100      # columns of every printed line
MAX_LINES = 30   # lines of the summary, the report's path excluded


def summarize(out: str, bootstrap: int = study.DEFAULT_BOOTSTRAP, seed: int = 0,
              offered: dict | None = None, verbose: bool = False, size_of=None,
              table=None) -> str:
    """Fit OUT's results (TABLE, when already read; with the candidate forms OFFERED, {law:
    {name: expression}}), write OUT/fits.json and OUT/boundary.json, return what the study found
    (and before it the full tables, when VERBOSE). SIZE_OF(name, params) -> training images
    (data.train_size) lets the findings give amounts as fractions of the datasets."""
    fits, slices = study.write_fits(out, bootstrap, seed, offered, table)
    if not fits["downstream"]:
        return f"no ok fine-tuning or distillation results under {out} yet: nothing to fit"
    sizes = reading.dataset_sizes(read_rows(out, [], table), size_of) if size_of else {}
    adaptive = read_optional(out, "adaptive", [])
    short = summary_lines(found.findings(fits, slices, adaptive, sizes), sizes)
    wrote = f"wrote {out}/{layout.FITS} and {out}/{layout.BOUNDARY}"
    return "\n\n".join(([tables_text(fits, slices)] if verbose else [])
                       + ["\n".join(short), wrote])


def tables_text(fits: dict, slices: list[Slice]) -> str:
    """The report's tables as plain text (their rows are wide: --verbose only)."""
    offered = any(len(entry(law).forms or {}) > 1 for laws in fits["downstream"].values()
                  for law in laws.values())
    shown = [tables.candidates_table(fits)] * offered + [
             tables.exponents_table(fits), tables.coefficients_table(fits),
             tables.cautions_table(fits), tables.extrapolation_table(fits),
             tables.lack_of_fit_table(fits), tables.boundary_table(slices),
             tables.theorem1_table(slices)]
    return "\n\n".join(to_text(t) for t in shown)


def crossing_table(f: found.Findings, mine: list[Slice], sizes: dict) -> list[str]:
    """Rows: student <- teachers; columns: Df; cells: where plain training overtakes distilling.
    Columns as wide as their widest cell; more Df than fit in WIDTH: the table in parts."""
    dfs = sorted({s.df for s in mine if s.df is not None})
    rows: dict = {}
    for s in mine:
        rows.setdefault(found.slice_label(s, sizes).split(",")[0], {})[s.df] = found.slice_cell(s)
    total = sizes.get(f.downstream)
    head = {df: "Df " + found.short(df) + (f" ({found.share(df, total)})" if total else "")
            for df in dfs}
    first = max([len("student <- teachers")] + [len(k) for k in rows]) + 2
    cell = max([len(h) for h in head.values()]
               + [len(c) for v in rows.values() for c in v.values()]) + 2
    per_line = max(1, (WIDTH - 2 - first) // cell)
    lines = []
    for start in range(0, len(dfs), per_line):
        cols = dfs[start:start + per_line]
        lines.append(("  " + "student <- teachers".ljust(first)
                      + "".join(head[df].ljust(cell) for df in cols)).rstrip())
        lines += [("  " + k.ljust(first) + "".join(v.get(df, "-").ljust(cell) for df in cols))
                  .rstrip() for k, v in rows.items()]
    return lines


def wrap(sentence: str) -> list[str]:
    return textwrap.wrap(sentence, WIDTH, initial_indent="  ", subsequent_indent="    ")


def summary_lines(every: list[found.Findings], sizes: dict) -> list[str]:
    """The summary, at most MAX_LINES lines: per downstream set a heading, the crossing table
    and the sentences; what does not fit is named, with where to read it."""
    lines: list[str] = []
    upstream = sizes.get("upstream")
    for f in every:
        mine = f.rows
        units = "  (D**p, else the measured turn: pretraining images [95 %]" + (
            f"; the upstream set has {found.short(upstream)})" if upstream else ")")
        lines += [f"{f.downstream}: where plain training overtakes distilling from smaller teachers",
                  units]
        lines += crossing_table(f, mine, sizes) if mine else ["  no distillation slices"]
        for sentence in f.sentences:
            lines += wrap(sentence)
    if len(lines) > MAX_LINES:
        cut = len(lines) - MAX_LINES + 1
        lines = lines[:MAX_LINES - 1] + [f"  ... {cut} more lines: report.md, or --verbose"]
    return lines
