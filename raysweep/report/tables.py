"""The report's tables, in the spirit of the paper's Tables 1, 2 and 4: fitted exponents and
coefficients with 95 % bootstrap intervals, the extrapolation check and the lack-of-fit test, the
distillation boundary per slice, the runs behind them, adaptive rounds and best hyper-parameters.

Numbers are written with `fmt` (3 significant digits) everywhere, so a value from fits.json reads
the same in every table. lambda = 1/coef is the paper's form of a coefficient (eq. 1: D^-alpha /
lambda); its interval is the coef interval inverted.

Left out: LaTeX output (Markdown and HTML cover sharing; the numbers are in the JSON files).
"""

from __future__ import annotations

import math
from collections import Counter

from raysweep.laws.catalogue import SYMBOLS
from raysweep.laws.measured import SIGNIFICANT_SE
from raysweep.laws.slices import Slice
from raysweep.report.figures_boundary import teachers_label
from raysweep.report.numbers import DASH, fmt, fmt_ci, images, images_ci, percent, with_ci
from raysweep.report.render import Table
from raysweep.report.tables_laws import (  # the law tables, read through each law's form
    candidates_table,
    coefficients_table,
    exponents_table,
    law_rows,
    law_table,
)

__all__ = [
    "DASH",
    "candidates_table",
    "coefficients_table",
    "exponents_table",
    "fmt",
    "fmt_ci",
    "images",
    "images_ci",
    "law_table",
    "with_ci",
]

def _input_order(name: str) -> tuple:
    return (list(SYMBOLS).index(name) if name in SYMBOLS else len(SYMBOLS), name)


def cautions_table(fits: dict) -> Table:
    """Inputs a law left out (they cannot be told apart from another term) and terms to distrust
    (raysweep.laws.study names both)."""
    rows = [[ds, name, k, f"left out: {why}"] for ds, name, law in law_rows(fits)
            for k, why in (law.inputs_dropped or {}).items()]
    rows += [[ds, name, "E", f"left out: {law.E_left_out}"] for ds, name, law in law_rows(fits)
             if law.E_left_out is not None]
    rows += [[ds, name, w.split(":")[0], w] for ds, name, law in law_rows(fits)
             for w in law.warnings or ()]
    return Table("Inputs left out and terms to distrust", ["downstream", "law", "term", "why"],
                 rows or [[DASH, DASH, DASH, "none"]])


def extrapolation_table(fits: dict) -> Table:
    """Per law and input: the error of the law fitted without the largest values of that input,
    on those held-out points (mean absolute percentage error), beside what the seeds' noise alone
    would cost a law that is exactly right there (laws.checks.noise_floor)."""
    header = ["downstream", "law", "held-out input", "points held out", "MAPE",
              "the true law would score (seed noise)", "note"]
    rows = []
    for ds, name, law in law_rows(fits):
        for k, ex in sorted((law.extrapolation or {}).items(), key=lambda kv: _input_order(kv[0])):
            if "skipped" in ex:
                rows.append([ds, name, k, DASH, DASH, DASH, f"skipped: {ex['skipped']}"])
            else:
                rows.append([ds, name, k, fmt(ex.get("held_out")), percent(ex.get("mape")),
                             percent(ex.get("noise_floor")), ""])
    return Table("Extrapolation check: fit without the largest scale, predict it", header, rows)


def _lack_of_fit_row(lof: dict) -> list[str]:
    if "skipped" in lof:
        return [DASH] * 6 + [f"skipped: {lof['skipped']}"]
    verdict = ("misses by more than the seeds' noise: the law's form, not the noise, limits it"
               if lof["misfits"] else "within the seeds' noise")
    return [f"{lof['points']} ({lof['replicated']} replicated)", percent(lof["misfit"]),
            percent(lof["noise"]), f"{fmt(lof['F'])} on {lof['df'][0]}, {lof['df'][1]}",
            fmt(lof["p"]), _largest_miss(lof.get("largest_miss")), verdict]


def _largest_miss(cell: dict | None) -> str:
    """'Dp 8, M 7.32k: rows 11.4 % below the law (seed noise ± 3.14 %)'."""
    if not cell:
        return DASH
    at = ", ".join(f"{SYMBOLS[k].measures if k in SYMBOLS else k} {images(v)}"
                   for k, v in sorted(cell["at"].items(), key=lambda kv: _input_order(kv[0])))
    side = "above" if cell["miss"] > 0 else "below"
    return (f"{at}: rows {fmt(100 * abs(math.expm1(cell['miss'])))} % {side} the law (seed "
            f"noise ± {fmt(100 * cell['se'])} %)")


def lack_of_fit_table(fits: dict) -> Table:
    """Per law: how far it misses each grid point's seed mean (rms, in log y: a relative error),
    against what the seeds' own spread explains, the pure-error F test, and the cell of one or
    two inputs' values where the miss is largest against its noise (laws.checks)."""
    header = ["downstream", "law", "grid points", "law misses a point's mean by (rms)",
              "noise alone gives", "F (df)", "p", "where it misses most", "reading"]
    rows = [[ds, name] + _lack_of_fit_row(law.lack_of_fit) for ds, name, law in law_rows(fits)
            if law.lack_of_fit is not None]
    return Table("Lack of fit: each law against its grid points' seed means", header,
                 rows or [[DASH] * (len(header) - 1) + ["no law fitted"]])


def _teachers(s: Slice) -> str:
    """A slice's teachers, with the Dp they were pretrained on where it is not the student's."""
    label = teachers_label(list(s.teacher_heads))
    return label + (f" (Dp {images(s.teacher_dp)})" if s.teacher_dp else "")


def boundary_table(slices: list[Slice]) -> Table:
    header = ["downstream", "student", "teachers", "Df (images)", "D*p [95 %] (images)",
              "D**p [95 %] (images)", "model-free crossing [95 %]", "in measured range", "status"]
    rows = [[s.downstream, f"{s.student_heads} heads", _teachers(s), images(s.df),
             images_ci(s.d_star, s.d_star_ci), images_ci(s.d_cross, s.cross_interval()),
             images_ci(s.model_free_cross, s.measured_interval()),
             "yes" if s.in_range else "no", s.status]
            for s in slices]
    if any(s.paper for s in slices):   # a candidate form was selected: the paper's beside
        header += ["forms (plain, distilled)", "paper forms' D*p; D**p [95 %]"]
        for row, s in zip(rows, slices):
            forms, paper = s.forms or {}, s.paper
            row += [f"{forms.get('error', 'paper')}, {forms.get('distilled_error', 'paper')}",
                    f"{images(paper.d_star)}; {images_ci(paper.d_cross, paper.cross_interval())}"
                    if paper else "same as the selected"]
    stars: dict = {}   # downstream -> its slices' D*p values
    for s in slices:
        if s.d_star is not None:
            stars.setdefault(s.downstream, []).append(s.d_star)
    same = all(len(set(v)) == 1 for v in stars.values()) and \
        any(len(v) > 1 for v in stars.values())
    note = ("; D*p rests on the laws' Dp terms alone (the paper's eq. 1 and 4 add one term per "
            "input, with no Dp interaction), so every slice of a downstream set has the same D*p"
            ) if same else ""
    return Table("Distillation boundary per slice: D*p (advantage peaks), D**p (plain overtakes),"
                 f" in pretraining images{note}", header, rows)


def _end(end: dict | None) -> str:
    """'-0.043 ± 0.027 (2 seeds)' for one end of a slice's measured advantage."""
    if not end:
        return DASH
    se = "" if end.get("se") is None else f" ± {end['se']:.3f}"
    return f"{end['mean']:+.3f}{se} ({end['seeds']} seed{'s' if end['seeds'] != 1 else ''})"


def _pattern(s: Slice) -> str:
    if s.theorem1 is None:
        return "cannot tell: " + ("one seed at an end, no standard error"
                                  if s.measured_ends else "fewer than 2 Dp paired")
    if s.theorem1:
        return "shown"
    small, large = s.measured_ends["smallest"], s.measured_ends["largest"]
    bound = SIGNIFICANT_SE
    helps = small["mean"] > bound * small["se"]
    hurts = large["mean"] < -bound * large["se"]
    if hurts and small["mean"] < -bound * small["se"]:
        return "not shown: distilling hurts at both ends"
    if not helps:
        return "not shown: no help at the smallest Dp"
    return "not shown: no harm at the largest Dp"


def theorem1_table(slices: list[Slice]) -> Table:
    """Theorem 1's pattern in the measurements, without the laws: plain minus distilled error
    (positive: distilling helped) at the smallest and largest Dp, mean ± standard error over the
    seeds run both ways."""
    shown = sum(bool(s.theorem1) for s in slices)
    told = sum(s.theorem1 is not None for s in slices)
    by_df: dict = {}   # Df -> (shown, can tell): where in Df the pattern lives, in one line
    for s in slices:
        if s.theorem1 is not None and s.df is not None:
            n, t = by_df.get(s.df, (0, 0))
            by_df[s.df] = (n + bool(s.theorem1), t + 1)
    per_df = "; by Df: " + ", ".join(f"{images(df)}: {n} of {t}"
                                     for df, (n, t) in sorted(by_df.items())) \
        if len(by_df) > 1 else ""
    header = ["downstream", "student", "teachers", "Df (images)", "smallest Dp (images)",
              "plain - distilled there", "largest Dp (images)", "plain - distilled there",
              "pattern"]
    rows = []
    for s in slices:
        ends = s.measured_ends or {}
        small, large = ends.get("smallest"), ends.get("largest")
        rows.append([s.downstream, f"{s.student_heads} heads", _teachers(s), images(s.df),
                     images(small and small["dp"]), _end(small),
                     images(large and large["dp"]), _end(large), _pattern(s)])
    return Table(f"Theorem 1, measured: distilling from smaller teachers helps at the smallest Dp "
                 f"and hurts at the largest, each by > {SIGNIFICANT_SE:g} seed standard errors, in "
                 f"{shown} of the {told} slices that can tell ({len(slices)} in all{per_df})",
                 header, rows)


def _values(rows: list[dict], key: str, show=str) -> str:
    vals = sorted({r[key] for r in rows if r.get(key) is not None})
    return ", ".join(show(v) for v in vals) or DASH


def runs_table(rows: list[dict]) -> Table:
    """Trials per downstream set and stage, by status, with the amounts and sizes measured."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("downstream") or "(upstream)", r["stage"]), []).append(r)
    header = ["downstream", "stage", "ok", "diverged", "failed", "heads", "Dp (images)",
              "Df (images)"]
    out = []
    for (ds, stage), rs in sorted(groups.items()):
        count = Counter(r["status"] for r in rs)
        out.append([ds, stage, str(count["ok"]), str(count["diverged"]), str(count["failed"]),
                    _values(rs, "heads"), _values(rs, "dp", images), _values(rs, "df", images)])
    return Table("Trials in the results (every status; figures use ok trials only)", header, out)


def _span(amounts: list) -> str:
    """'8k – 24k', or one value when all are the same."""
    if not amounts:
        return DASH
    lo, hi = images(min(amounts)), images(max(amounts))
    return lo if lo == hi else f"{lo} – {hi}"


def adaptive_table(adaptive: dict) -> Table:
    header = ["round", "trials placed", "downstream sets", "Dp range (images)", "why"]
    rows = []
    for i, rnd in enumerate(adaptive.get("rounds", [])):
        props = rnd.get("proposals", [])
        dps = [p["dp"] for p in props if p.get("dp") is not None]
        why = Counter(str(p.get("reason", DASH)) for p in props)
        rows.append([str(rnd.get("round", i + 1)), str(len(props)),
                     ", ".join(sorted({str(p.get("downstream")) for p in props})) or DASH,
                     _span(dps),
                     "; ".join(f"{k} (x{n})" for k, n in why.most_common())])
    return Table(f"Adaptive rounds ({adaptive.get('trials_run', DASH)} trials run of "
                 f"{adaptive.get('trials_total', DASH)} in total)", header, rows)


def hparams_table(best: dict[int, dict], params_by_heads: dict[int, int]) -> Table:
    names = sorted({k for v in best.values() for k in v})
    rows = [[str(h), images(params_by_heads.get(h))] + [fmt(v.get(k)) for k in names]
            for h, v in sorted(best.items())]
    return Table("Best hyper-parameters per model size (hparams.yaml)",
                 ["heads", "parameters"] + names, rows)
