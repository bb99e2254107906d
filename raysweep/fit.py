"""`python -m raysweep.fit`: fit the paper's laws to a grid's results, or one law to any table.

    python -m raysweep.fit OUT [--bootstrap B] [--verbose]   # OUT: local dir or s3://...
        per downstream set, the laws of raysweep.laws.catalogue (eq. 1, 2, 4) with 95 % bootstrap
        intervals and the extrapolation check, the boundary per slice; writes OUT/fits.json and
        OUT/boundary.json and prints what the study found (with --verbose, first the tables in
        the style of the paper's Tables 1, 2 and 4).
    python -m raysweep.fit --table FILE --inputs COL[,COL...] --target COL [--bootstrap B] [--json]
        y = E + sum_k coef_k * COL_k^-exponent_k on a CSV or Parquet table.
    python -m raysweep.fit --table FILE --target COL --law [NAME=]EXPR [--law ...]
                           [--init PARAM=LO:HI ...] [--bootstrap B] [--json]
        any declared form (laws/form.py; the table's columns are its inputs, every other name a
        parameter), with its checks; several forms are compared and one selected
        (laws/candidates.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raysweep import data
from raysweep.errors import InputError
from raysweep.laws import candidates, study
from raysweep.laws.checks import extrapolation_check, lack_of_fit
from raysweep.laws.entries import LawEntry
from raysweep.laws.fitting import fit_form, fit_law
from raysweep.laws.form import parse
from raysweep.laws.starts import check_init
from raysweep.report import summary, tables
from raysweep.report.render import to_text
from raysweep.store import results

READERS = {".csv": pacsv.read_csv, ".parquet": pq.read_table, ".pq": pq.read_table}


def read_table(path: str):
    ext = os.path.splitext(path)[1].lower()
    if ext not in READERS:
        raise InputError(f"{path}: unknown table format {ext!r}; expected one of {sorted(READERS)}")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    return READERS[ext](path)


def columns(path: str, table, names: list[str]) -> dict[str, np.ndarray]:
    """NAMES of TABLE as float arrays, or an InputError naming the column and what is wrong."""
    missing = [c for c in names if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: no column(s) {missing}; the table has {table.column_names}")
    cols = {}
    for c in names:
        col = table.column(c)
        if col.null_count:
            raise InputError(f"{path}: column {c!r} has {col.null_count} empty value(s)")
        try:
            cols[c] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)
        except (TypeError, ValueError) as err:
            raise InputError(f"{path}: column {c!r} is not numeric ({col.type}): {err}") from err
    return cols


def table_fit(path: str, inputs: list[str], target: str, bootstrap: int,
              seed: int) -> LawEntry:
    cols = columns(path, read_table(path), inputs + [target])
    fit = fit_law({k: cols[k] for k in inputs}, cols[target], bootstrap=bootstrap, seed=seed)
    return study.law_entry(fit, target)


def named_laws(given: list[str]) -> dict[str, str]:
    """{name: expression} from --law [NAME=]EXPR flags (unnamed: law1, law2, ...)."""
    out = {}
    for i, text in enumerate(given, 1):
        head, eq, rest = text.partition("=")
        named = eq and head.strip().isidentifier() and not rest.startswith("=")
        name, expression = (head.strip(), rest) if named else (f"law{i}", text)
        if name in out:
            raise InputError(f"--law {text!r}: the name {name!r} is given twice")
        out[name] = expression
    return out


def parse_init(given: list[str]) -> dict[str, tuple[float, float]]:
    """{parameter: (lo, hi)} from --init NAME=LO:HI flags."""
    out = {}
    for text in given:
        name, _, span = text.partition("=")
        lo, _, hi = span.partition(":")
        try:
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise InputError(f"--init {text!r}: expected NAME=LO:HI, e.g. alpha=0.1:1") from None
    return out


def table_forms(path: str, target: str, laws: dict[str, str], inputs: list[str] | None,
                init: dict, bootstrap: int, seed: int) -> LawEntry:
    """One entry per form (params, objective, intervals with BOOTSTRAP, its checks); with
    several, one whose `forms` holds them, with `selected` and `why_selected`."""
    table = read_table(path)
    names = inputs or [c for c in table.column_names if c != target]
    forms = {k: parse(e, names) for k, e in laws.items()}
    nowhere = sorted(set(init) - {p for f in forms.values() for p in f.params})
    if nowhere:
        known = sorted({p for f in forms.values() for p in f.params})
        raise InputError(f"--init {nowhere[0]}: a parameter of no --law; their parameters are "
                         f"{known}")
    used = sorted({k for f in forms.values() for k in f.inputs})
    cols = columns(path, table, used + [target])
    entries = {}
    for name, form in forms.items():
        X = {k: cols[k] for k in form.inputs}
        mine = {k: v for k, v in init.items() if k in form.params}
        check_init(form, mine)
        fit = fit_form(form, X, cols[target], bootstrap=bootstrap, seed=seed, init=mine)
        entries[name] = dataclasses.replace(
            study.law_entry(fit, target), lack_of_fit=lack_of_fit(X, cols[target], fit.law),
            extrapolation=extrapolation_check(X, cols[target], form=form),
            bic=candidates.bic(fit, X, cols[target]), status="ok")
    if len(entries) == 1:
        return next(iter(entries.values()))
    chosen, why = candidates.select(entries)
    return LawEntry(target=target, selected=chosen, why_selected=why, forms=entries)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m raysweep.fit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", help="a grid's output location (local dir or s3://...)")
    p.add_argument("--table", help="a CSV or Parquet file to fit one law to")
    p.add_argument("--inputs", help="with --table: input columns, comma-separated")
    p.add_argument("--target", help="with --table: the target column")
    p.add_argument("--bootstrap", type=int, help=f"resamples for 95 %% intervals (default: "
                   f"{study.DEFAULT_BOOTSTRAP} for OUT, 0 for --table)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--law", action="append", default=[], metavar="[NAME=]EXPR",
                   help="with --table: a form to fit, e.g. 'E + A / N**a + B / D**b' (repeat to "
                        "compare several)")
    p.add_argument("--init", action="append", default=[], metavar="PARAM=LO:HI",
                   help="with --law: where a parameter's starts are drawn from (its own units)")
    p.add_argument("--json", action="store_true", help="with --table: print one JSON object")
    p.add_argument("--verbose", action="store_true",
                   help="with OUT: print the full tables of the laws and the boundary before the "
                        "summary of what the study found")
    return p


def run(args) -> str:
    if (args.out is None) == (args.table is None):
        raise InputError("give either OUT (a grid's output) or --table FILE, not both or neither")
    if args.bootstrap is not None and args.bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.out is not None:
        boot = study.DEFAULT_BOOTSTRAP if args.bootstrap is None else args.bootstrap
        return summary.summarize(args.out, boot, args.seed, verbose=args.verbose,
                                 size_of=data.train_size, table=results.read(args.out))
    if not args.target or not (args.inputs or args.law):
        raise InputError("--table needs --target COL and --inputs COL[,COL...] or --law EXPR")
    inputs = [c.strip() for c in (args.inputs or "").split(",") if c.strip()]
    if args.law:
        obj = table_forms(args.table, args.target, named_laws(args.law), inputs or None,
                          parse_init(args.init), args.bootstrap or 0, args.seed)
    else:
        obj = table_fit(args.table, inputs, args.target, args.bootstrap or 0, args.seed)
    if args.json:
        return json.dumps(study.finite(obj.to_json()))
    if obj.forms:
        return to_text(tables.candidates_table({"": {args.target: obj}}))
    return to_text(tables.law_table(obj))


def main(argv: list[str] | None = None) -> int:
    try:
        print(run(parser().parse_args(argv)))
    except (InputError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
