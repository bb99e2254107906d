"""`python -m raysweep.fit`: fit the paper's laws to a grid's results, or one law to any table.

    python -m raysweep.fit OUT [--bootstrap B]          # OUT: local dir or s3://...
        per downstream set, laws `LAWS` (eq. 1, 2, 4) with 95 % bootstrap intervals and the
        extrapolation check, the boundary per slice; writes OUT/fits.json and OUT/boundary.json
        and prints tables in the style of the paper's Tables 1, 2 and 4.
    python -m raysweep.fit --table FILE --inputs COL[,COL...] --target COL [--bootstrap B] [--json]
        y = E + sum_k coef_k * COL_k^-exponent_k on a CSV or Parquet table.

An input whose term cannot be told apart from another -- a single value in a grid's rows (e.g. one
Df: it merges with E), or one value per value of an earlier input (e.g. one teacher set per student
size: it merges with the size term) -- is left out of that law and named in "inputs_dropped" (the
law is then conditional on it); a law that still has too few rows gets a "status" with the reason
instead of numbers. Terms the data barely constrain (exponent outside EXPONENT_RANGE, E ~ 0) are
named in "warnings". Rows whose target is not > 0 (an error of exactly 0 has no logarithm) are
left out, counted in "rows_skipped".
The distilled laws take the MEAN parameter count of the teachers as their extra input: averaged
teacher distributions act like one teacher of intermediate capacity, and a mean keeps eq. 4's
single teacher term.

Left out: per-upstream grouping (a grid has one upstream set; fits group by downstream set) and
the extrapolation check in --table mode (its JSON is the issue's fixed object).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys

import numpy as np

from raysweep import boundary as bnd
from raysweep.laws import Fit, extrapolation_check, fit_law

# Law name in fits.json -> (stage of its rows, target column, inputs); the paper's eq. 1, 2 and 4.
PLAIN_INPUTS = ("dp", "params", "df")
LAWS = {
    "error": ("finetune", "error", PLAIN_INPUTS),
    "loss": ("finetune", "loss", PLAIN_INPUTS),
    "distilled_error": ("distill", "error", PLAIN_INPUTS + ("teacher_params",)),
    "distilled_loss": ("distill", "loss", PLAIN_INPUTS + ("teacher_params",)),
}
SYMBOLS = {"dp": "alpha (Dp)", "params": "beta (M)", "df": "gamma (Df)",
           "teacher_params": "eta (teacher M)"}  # the paper's exponent names
DEFAULT_BOOTSTRAP = 200  # resamples for a grid (the grid command's default too)
EXPONENT_RANGE = (0.0, 5.0)  # outside it a term is flagged: the paper's exponents are < 1, and
                             # beyond ~5 a "power law" over a few sizes is a step the data allow
DASH = "-"


# ---- fitting a grid's results -------------------------------------------------------------

def law_json(fit: Fit, target: str) -> dict:
    """The issue's JSON object for one fitted law."""
    out = {"target": target, "n": fit.n, **fit.law.to_dict(), "objective": fit.objective}
    if fit.ci is not None:
        out["ci"] = {k: list(v) for k, v in fit.ci.items()}
    return out


def fit_rows(rows: list[dict], target: str, inputs, bootstrap: int,
             seed: int) -> tuple[dict, Fit | str]:
    """(fits.json entry, Fit or the reason there is none) for one law on a grid's rows."""
    usable = [r for r in rows if r.get(target) is not None and r[target] > 0
              and all(r.get(k) is not None for k in inputs)]
    head = {"target": target, "n": len(usable), "rows_skipped": len(rows) - len(usable)}
    cols = {k: np.array([r[k] for r in usable], dtype=float) for k in inputs}
    dropped = _unidentifiable(cols)
    X = {k: v for k, v in cols.items() if k not in dropped}
    head |= {"inputs": list(X), "inputs_dropped": dropped}
    need = 1 + 2 * len(X)
    why = ("no rows" if not usable else "no input varies" if not X else
           f"too few rows: {len(usable)} for {need} parameters" if len(usable) < need else None)
    if why:
        return head | {"status": why}, why
    y = np.array([r[target] for r in usable], dtype=float)
    try:
        fit = fit_law(X, y, bootstrap=bootstrap, seed=seed)
    except ValueError as err:
        return head | {"status": str(err)}, str(err)
    return head | law_json(fit, target) | {"extrapolation": extrapolation_check(X, y),
                                           "warnings": _warnings(fit, y), "status": "ok"}, fit


def _unidentifiable(cols: dict[str, np.ndarray]) -> dict[str, str]:
    """Inputs whose term cannot be told apart from another: a single value (merges with E), or
    one value per value of an earlier input (e.g. one teacher set per student size: the teacher
    term merges with the size term). Later inputs are the ones dropped."""
    dropped, kept = {}, []
    for k, v in cols.items():
        if len(v) and np.unique(v).size == 1:
            dropped[k] = f"single value {v[0]:g}"
            continue
        for j in kept:
            pairs = np.unique(np.stack([v, cols[j]]), axis=1).shape[1]
            if pairs == np.unique(v).size == np.unique(cols[j]).size:
                dropped[k] = f"confounded with {j}: one value of {k} per value of {j}"
                break
        else:
            kept.append(k)
    return dropped


def _warnings(fit: Fit, y: np.ndarray) -> list[str]:
    lo, hi = EXPONENT_RANGE
    out = [f"{k}: exponent {x:.3g} outside [{lo:g}, {hi:g}]; the data barely constrain this term"
           for k, (_, x) in fit.law.terms.items() if not lo <= x <= hi]
    if fit.law.E < 1e-6 * y.min():  # e ran off to -inf: the optimum lies on the E = 0 boundary
        out.append("E is ~0: the rows show no floor, so E and its interval say little")
    return out


def fit_results(table, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> tuple[dict, list]:
    """(fits.json object, boundary.json list) for a results table (pyarrow.Table, dict of
    columns or list of row dicts; only status == "ok" rows are used)."""
    rows = bnd.ok_rows(table)
    per_ds: dict[str, dict] = {}
    fits: dict[str, dict] = {}
    for ds in sorted({r["downstream"] for r in rows if r.get("downstream") is not None}):
        per_ds[ds], fits[ds] = {}, {}
        for name, (stage, target, inputs) in LAWS.items():
            mine = [r for r in rows if r["downstream"] == ds and r["stage"] == stage]
            per_ds[ds][name], fits[ds][name] = fit_rows(mine, target, inputs, bootstrap, seed)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    doc = {"downstream": per_ds, "bootstrap": bootstrap, "created": created}
    return doc, bnd.boundaries(rows, fits)


def summarize(out: str, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> str:
    """Fit OUT's results, write OUT/fits.json and OUT/boundary.json, return the printed tables."""
    from raysweep import storage
    from raysweep.results import read_results

    doc, slices = fit_results(read_results(out), bootstrap, seed)
    for name, obj in (("fits.json", doc), ("boundary.json", slices)):
        storage.write_bytes(out, name, json.dumps(_finite(obj), indent=1).encode())
    if not doc["downstream"]:
        return f"no ok fine-tuning or distillation results under {out} yet: nothing to fit"
    return "\n\n".join([exponents_text(doc), coefficients_text(doc), warnings_text(doc),
                        extrapolation_text(doc), boundary_text(slices),
                        f"wrote {out}/fits.json and {out}/boundary.json"])


def _finite(obj):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# ---- printed tables -----------------------------------------------------------------------

def _num(x) -> str:
    return DASH if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"


def _ci(value, ci) -> str:
    return _num(value) + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else "")


def render(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: title, header, rule, rows (short rows leave trailing cells empty)."""
    widths = [max(len(str(r[i])) for r in [header, *rows] if i < len(r))
              for i in range(len(header))]

    def line(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([title, line(header), line(["-" * w for w in widths])]
                     + [line(r) for r in rows])


def _laws(doc: dict):
    for ds, laws in sorted(doc["downstream"].items()):
        for name in LAWS:
            yield ds, name, laws.get(name, {"status": "missing"})


def _term_cell(law: dict, k: str, field: str) -> str:
    if k in law.get("inputs_dropped", {}):
        return "left out (below)"
    term = law.get("terms", {}).get(k)
    return _ci(term[field], law.get("ci", {}).get(f"{k}.{field}")) if term else DASH


def exponents_text(doc: dict) -> str:
    rows = [[ds, name, str(law.get("n", DASH))] + (
        [_term_cell(law, k, "exponent") for k in SYMBOLS] if law.get("status") == "ok"
        else [f"not fitted: {law.get('status')}"]) for ds, name, law in _laws(doc)]
    return render("Fitted exponents, 95 % intervals (paper Tables 1, 2)",
                  ["downstream", "law", "n"] + list(SYMBOLS.values()), rows)


def coefficients_text(doc: dict) -> str:
    """E and coef per input (the paper's lambda = 1 / coef)."""
    rows = [[ds, name, _ci(law.get("E"), law.get("ci", {}).get("E"))]
            + [_term_cell(law, k, "coef") for k in SYMBOLS]
            for ds, name, law in _laws(doc) if law.get("status") == "ok"]
    return render("Fitted E and coefficients (lambda = 1/coef), 95 % intervals (paper Table 4)",
                  ["downstream", "law", "E"] + [f"coef {k}" for k in SYMBOLS], rows)


def warnings_text(doc: dict) -> str:
    lines = [f"  {ds} {name}: {w}" for ds, name, law in _laws(doc) for w in law.get("warnings", [])]
    lines += [f"  {ds} {name}: {k} left out ({why})" for ds, name, law in _laws(doc)
              for k, why in law.get("inputs_dropped", {}).items()]
    return "\n".join(["Inputs left out and terms to distrust:"] + (lines or ["  none"]))


def extrapolation_text(doc: dict) -> str:
    rows = [[ds, name, k, str(ex.get("held_out", DASH)),
             _num(100 * ex["mape"]) + " %" if "mape" in ex else DASH, ex.get("skipped", "")]
            for ds, name, law in _laws(doc) for k, ex in law.get("extrapolation", {}).items()]
    return render("Extrapolation: refit without the largest value of an input, predict it",
                  ["downstream", "law", "held-out input", "rows", "MAPE", "skipped"], rows)


def boundary_text(slices: list[dict]) -> str:
    rows = [[s["downstream"], str(s["student_heads"]), ",".join(map(str, s["teacher_heads"])),
             _num(s["df"]), _ci(s.get("d_star"), s.get("d_star_ci")),
             _ci(s.get("d_cross"), s.get("d_cross_ci")), _num(s.get("model_free_cross")),
             s["status"]] for s in slices]
    return render("Distillation boundary (Dp in images), 95 % intervals",
                  ["downstream", "student heads", "teacher heads", "Df", "D*p", "D**p",
                   "model-free", "status"], rows)


# ---- the command line ---------------------------------------------------------------------

def read_table(path: str):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    readers = {".csv": pacsv.read_csv, ".parquet": pq.read_table, ".pq": pq.read_table}
    ext = os.path.splitext(path)[1].lower()
    if ext not in readers:
        raise ValueError(f"{path}: unknown table format {ext!r}; expected one of {sorted(readers)}")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    return readers[ext](path)


def table_fit(path: str, inputs: list[str], target: str, bootstrap: int, seed: int) -> dict:
    table = read_table(path)
    missing = [c for c in inputs + [target] if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; the table has {table.column_names}")
    cols = {}
    for c in inputs + [target]:
        col = table.column(c)
        if col.null_count:
            raise ValueError(f"{path}: column {c!r} has {col.null_count} empty value(s)")
        try:
            cols[c] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: column {c!r} is not numeric ({col.type}): {err}") from err
    fit = fit_law({k: cols[k] for k in inputs}, cols[target], bootstrap=bootstrap, seed=seed)
    return law_json(fit, target)


def law_text(obj: dict) -> str:
    ci = obj.get("ci", {})
    rows = [["E", "", _ci(obj["E"], ci.get("E")), ""]] + [
        [k, _ci(t["exponent"], ci.get(f"{k}.exponent")), _ci(t["coef"], ci.get(f"{k}.coef")),
         _num(t["lambda"])] for k, t in obj["terms"].items()]
    return render(f"{obj['target']} = E + sum coef * x^-exponent   (n = {obj['n']}, "
                  f"summed Huber loss {obj['objective']:.6g})",
                  ["term", "exponent", "coef / value", "lambda = 1/coef"], rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m raysweep.fit", description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", help="a grid's output location (local dir or s3://...)")
    p.add_argument("--table", help="a CSV or Parquet file to fit one law to")
    p.add_argument("--inputs", help="with --table: input columns, comma-separated")
    p.add_argument("--target", help="with --table: the target column")
    p.add_argument("--bootstrap", type=int, help=f"resamples for 95 %% intervals (default: "
                   f"{DEFAULT_BOOTSTRAP} for OUT, 0 for --table)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--json", action="store_true", help="with --table: print one JSON object")
    return p


def run(args) -> str:
    if (args.out is None) == (args.table is None):
        raise ValueError("give either OUT (a grid's output) or --table FILE, not both or neither")
    if args.bootstrap is not None and args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.out is not None:
        boot = DEFAULT_BOOTSTRAP if args.bootstrap is None else args.bootstrap
        return summarize(args.out, boot, args.seed)
    if not args.inputs or not args.target:
        raise ValueError("--table needs --inputs COL[,COL...] and --target COL")
    inputs = [c.strip() for c in args.inputs.split(",") if c.strip()]
    obj = table_fit(args.table, inputs, args.target, args.bootstrap or 0, args.seed)
    return json.dumps(_finite(obj)) if args.json else law_text(obj)


def main(argv: list[str] | None = None) -> int:
    try:
        print(run(parser().parse_args(argv)))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
