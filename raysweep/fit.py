"""`python -m raysweep.fit`: fit the paper's laws to a grid's results, or one law to any table.

    python -m raysweep.fit OUT [--bootstrap B] [--verbose]   # OUT: local dir or s3://...
        per downstream set, the laws of raysweep.laws.catalogue (eq. 1, 2, 4) with 95 % bootstrap
        intervals and the extrapolation check, the boundary per slice; writes OUT/fits.json and
        OUT/boundary.json and prints what the study found (with --verbose, first the tables in
        the style of the paper's Tables 1, 2 and 4).
    python -m raysweep.fit --table FILE --inputs COL[,COL...] --target COL [--bootstrap B] [--json]
        y = E + sum_k coef_k * COL_k^-exponent_k on a CSV or Parquet table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raysweep import data
from raysweep.errors import InputError
from raysweep.laws import study
from raysweep.laws.fitting import fit_law
from raysweep.report import summary, tables
from raysweep.report.render import to_text

READERS = {".csv": pacsv.read_csv, ".parquet": pq.read_table, ".pq": pq.read_table}


def read_table(path: str):
    ext = os.path.splitext(path)[1].lower()
    if ext not in READERS:
        raise InputError(f"{path}: unknown table format {ext!r}; expected one of {sorted(READERS)}")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    return READERS[ext](path)


def table_fit(path: str, inputs: list[str], target: str, bootstrap: int, seed: int) -> dict:
    table = read_table(path)
    missing = [c for c in inputs + [target] if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: no column(s) {missing}; the table has {table.column_names}")
    cols = {}
    for c in inputs + [target]:
        col = table.column(c)
        if col.null_count:
            raise InputError(f"{path}: column {c!r} has {col.null_count} empty value(s)")
        try:
            cols[c] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)
        except (TypeError, ValueError) as err:
            raise InputError(f"{path}: column {c!r} is not numeric ({col.type}): {err}") from err
    fit = fit_law({k: cols[k] for k in inputs}, cols[target], bootstrap=bootstrap, seed=seed)
    return study.law_json(fit, target)


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
        return summary.summarize(args.out, boot, args.seed, args.verbose, data.train_size)
    if not args.inputs or not args.target:
        raise InputError("--table needs --inputs COL[,COL...] and --target COL")
    inputs = [c.strip() for c in args.inputs.split(",") if c.strip()]
    obj = table_fit(args.table, inputs, args.target, args.bootstrap or 0, args.seed)
    return json.dumps(study.finite(obj)) if args.json else to_text(tables.law_table(obj))


def main(argv: list[str] | None = None) -> int:
    try:
        print(run(parser().parse_args(argv)))
    except (InputError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
