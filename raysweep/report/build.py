"""The report: the paper's figures and tables from whatever OUT holds, written to OUT/report/ as
PNG figures, report.md and one self-contained report.html (`python -m raysweep.report OUT`).

  write_report(out) -> URI of report.html      (also called at the end of grid and adaptive)

The flow reads top to bottom in `build`: what the study found (per downstream set the findings'
sentences, the map of where distilling helps with the boundary on it, and a line per slice), then
runs, boundary, fitted laws, then per downstream set the scaling figures (against Dp, Df and model
size; Figs. 2-4), the parity plot of every law, and per distillation slice Fig. 5 (distilled vs
plain) and Fig. 6 (F(Dp) with D*p, D**p); then adaptive rounds and hyper-parameters. A part that
cannot be drawn says why in a note (NOTES), never raises.

Left out: upstream (pretraining) curves -- the paper's laws are about downstream error -- and
several upstream sets in one OUT (fits.json is keyed by downstream set alone).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from functools import partial

import pyarrow.fs as pafs

from raysweep import __version__
from raysweep.errors import InputError
from raysweep.laws.boundary import slice_key
from raysweep.laws.entries import LawEntry, entry
from raysweep.report import opening, reading, tables
from raysweep.report.blocks import figure, guarded
from raysweep.report.figures import AXIS_LABELS, LAWS, law_ok, short
from raysweep.report.figures_boundary import (
    fig_adaptive,
    fig_boundary,
    fig_distill_vs_plain,
    fig_hparams,
    teachers_label,
)
from raysweep.report.figures_laws import fig_parity, fig_vs_data, fig_vs_size
from raysweep.report.inputs import read_inputs
from raysweep.report.render import Heading, Image, Note, to_html, to_markdown
from raysweep.store import layout, provenance, storage

NOTES = {
    "no_results": "No results yet: {out}/results holds no trial records, so there is nothing to "
                  "plot. Run python -m raysweep.grid first.",
    "no_plain": "No ok fine-tuning results on {ds} yet: the scaling figures need stage finetune "
                "trials.",
    "no_fits": "No fits.json yet: the law tables need python -m raysweep.fit OUT; figures show "
               "measured points only, joined by dotted lines.",
    "law": "The {law} law ({eq}) on {ds} is not fitted: {status}. Its figures show measured "
           "points only.",
    "one_value": "Only one {what} measured on {ds} ({value}): a curve against it needs at least "
                 "two, so the figures against {what} are left out.",
    "not_ok": "Left out of the figures on {ds}: {diverged} diverged and {failed} failed trials "
              "(see the runs table).",
    "no_laws": "No fitted laws for {ds} yet: the parity plot needs fits.json with its laws.",
    "no_distill": "No distilled trials on {ds} yet: the distillation figures need stage distill "
                  "results.",
    "no_boundary": "No boundary.json yet: the boundary table and the D*p / D**p marks need the "
                   "boundary step after fitting; the figures show measured differences only.",
    "no_adaptive": "No adaptive rounds (no adaptive.json): run python -m raysweep.adaptive "
                   "--target boundary to place trials where the boundary is still uncertain.",
    "no_hparams": "No hparams.yaml: the hyper-parameter search has not run, so every model size "
                  "used the sweep's training settings.",
}

# Scaling figure x -> (the input held at one slice, row key that tells x values apart, its name)
SCALING = {"dp": ("df", "dp", "Dp value"), "df": ("dp", "df", "Df value"),
           "params": ("df", "heads", "model size")}
TARGETS = ("error", "loss")  # plain laws in fits.json are named after their target


def note(key: str, **kw) -> Note:
    return Note(NOTES[key].format(**kw))


def _choose_fixed(rows: list[dict], key: str, other: str) -> tuple:
    """The value of `other` whose slice has the most distinct `key` values (largest on a tie)."""
    counts: dict = {}
    for r in rows:
        counts.setdefault(r[other], set()).add(r[key])
    best = max(counts, key=lambda v: (len(counts[v]), v))
    return best, len(counts[best]), len(counts)


def _law_caption(law: LawEntry | None, eq: str) -> str:
    if law is not None and law.ok:
        return f"Lines: the fitted law ({eq}, {'?' if law.n is None else law.n} trials) at this slice."
    return "No fitted law: dotted lines join the measured means."


def scaling_figures(ds: str, plain: list[dict], laws: dict) -> list:
    blocks = []
    for x, (other, key, what) in SCALING.items():
        value, n_x, n_other = _choose_fixed(plain, key, other)
        if n_x < 2:
            only = next(r[key] for r in plain if r[other] == value)
            shown = f"{only} heads" if key == "heads" else f"{short(only)} images"
            blocks.append(note("one_value", what=what, ds=ds, value=shown))
            continue
        for target in TARGETS:
            law = laws.get(target)
            curves = "one curve per Dp, markers coloured by model size" if x == "params" \
                else "one curve per model size"
            which = ("the only value measured" if n_other == 1 else
                     f"of {n_other} measured, the one with the most {what}s")
            caption = (f"{AXIS_LABELS[target].capitalize()} against {AXIS_LABELS[x]} on {ds}, "
                       f"{curves}, at {other.capitalize()} = {short(value)} images ({which}). "
                       f"{_law_caption(law, LAWS[target].equation)} "
                       "Points: mean over seeds; bars: +-1 sd where several seeds ran.")
            title = f"{ds}: {target} vs {x} ({other.capitalize()} = {short(value)})"
            draw = (partial(fig_vs_size, plain, law, target, {other: value}, title)
                    if x == "params" else
                    partial(fig_vs_data, plain, law, x, target, {other: value}, title))
            blocks += figure(f"{ds}-{target}-vs-{x}", caption, draw)
    return blocks


def distill_figures(ds: str, plain: list, distilled: list, laws: dict, boundary) -> list:
    if not distilled:
        return [note("no_distill", ds=ds)]
    by_key = {slice_key(b)[1:]: b for b in boundary or [] if b.downstream == ds}
    blocks = [] if boundary is not None else [note("no_boundary")]
    for key in sorted({(r["heads"], r["teacher_heads"], r["df"]) for r in distilled}):
        who = f"{key[0]}-head student, teachers {teachers_label(key[1])}, Df = {short(key[2])}"
        title = f"{ds}: student {key[0]} heads, teachers {'+'.join(map(str, key[1]))}, " \
                f"Df {short(key[2])}"
        name = f"{ds}-s{key[0]}-t{'-'.join(map(str, key[1]))}-df{key[2]}"
        blocks += figure(
            f"{name}-distill",
            f"Top-1 error against pretraining images Dp on {ds}, {who}: plain transfer (filled) "
            "and distilled (open); lines are the fitted eq. 1 and eq. 4 where fitted (paper "
            "Fig. 5).", partial(fig_distill_vs_plain, plain, distilled, key, laws, title))
        bslice = by_key.get(key)
        status = bslice.status if bslice else "not in boundary.json"
        unfitted = [n for n in ("error", "distilled_error") if not law_ok(laws.get(n))]
        line = (f"no fitted line: {' and '.join(unfitted)} not fitted" if unfitted
                else "the line is fitted eq. 1 minus fitted eq. 4")
        blocks += figure(
            f"{name}-boundary",
            f"F(Dp) = E_plain - E_distilled on {ds}, {who} (paper Fig. 6): points pair trials "
            f"by seed; {line}; vertical lines D*p and D**p with their 95 % intervals shaded "
            "(a bar with open ends, its numbers above it, where one runs off the plot). "
            f"Boundary status: {status}.",
            partial(fig_boundary, plain, distilled, key, laws, bslice, title))
    return blocks


def downstream_section(ds: str, rows: list[dict], fits: dict | None, boundary) -> list:
    mine = [r for r in rows if r.get("downstream") == ds]
    ok = {stage: [r for r in mine if r["stage"] == stage and r["status"] == "ok"
                  and r.get("error") is not None] for stage in ("finetune", "distill")}
    laws = {name: entry(e) for name, e in (fits or {}).get("downstream", {}).get(ds, {}).items()}
    blocks = [Heading(f"Downstream set: {ds}")]
    diverged = sum(r["status"] == "diverged" for r in mine)
    failed = sum(r["status"] == "failed" for r in mine)
    if diverged or failed:
        blocks.append(note("not_ok", diverged=diverged, failed=failed, ds=ds))
    blocks += [note("law", law=name, eq=LAWS[name].equation, ds=ds, status=law.status)
               for name, law in laws.items() if name in LAWS and not law.ok]
    blocks.append(Heading("Scaling with Dp, Df and model size (paper Figs. 2-4)", 3))
    if not ok["finetune"]:
        blocks.append(note("no_plain", ds=ds))
    else:
        blocks += scaling_figures(ds, ok["finetune"], laws)
    blocks.append(Heading("Fit quality", 3))
    if not any(law_ok(law) for law in laws.values()):
        blocks.append(note("no_laws", ds=ds))
    elif ok["finetune"] or ok["distill"]:
        blocks += figure(f"{ds}-parity",
                         f"Parity of every fitted law on {ds}: predicted against measured, one "
                         "point per ok trial coloured by model size; on the diagonal = fitted "
                         "exactly.", partial(fig_parity, ok, laws, f"{ds}: fitted laws"))
    blocks.append(Heading("Distilled against plain, and the boundary (paper Figs. 5-6)", 3))
    return blocks + distill_figures(ds, ok["finetune"], ok["distill"], laws, boundary)


def build(inputs: dict, notes: list[str], out: str) -> list:
    rows, fits, boundary = inputs["rows"], inputs["fits"], inputs["boundary"]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks = [Heading("raysweep report", 1),
              Note(f"Built {when} by raysweep {__version__} from {out}: {len(rows)} trials"
                   + (f"; fits.json created {fits.get('created', '?')} with "
                      f"{fits.get('bootstrap', '?')} bootstrap resamples." if fits else "."))]
    blocks += [Note(code_note(rows))] if rows else []
    blocks += [Note(n) for n in notes]
    blocks += guarded("What the study found", partial(opening.findings_section, inputs))
    blocks += [Heading("Runs"), tables.runs_table(rows) if rows else note("no_results", out=out)]
    blocks.append(Heading("Distillation boundary"))
    blocks += guarded("The boundary tables", lambda: [tables.boundary_table(boundary),
                                                         tables.theorem1_table(boundary)]) \
        if boundary else [note("no_boundary")]
    blocks.append(Heading("Fitted laws"))
    blocks += guarded("The law tables", lambda: [
        tables.exponents_table(fits), tables.coefficients_table(fits),
        tables.cautions_table(fits), tables.extrapolation_table(fits),
        tables.lack_of_fit_table(fits)]) \
        if fits else [note("no_fits")]
    sets = {r["downstream"] for r in rows if r.get("downstream")}
    sets |= set((fits or {}).get("downstream", {})) | {b.downstream for b in boundary or []}
    for ds in sorted(s for s in sets if s):
        blocks += downstream_section(ds, rows, fits, boundary)
    return (blocks + guarded("The adaptive section", partial(adaptive_section, inputs["adaptive"]))
            + guarded("The hyper-parameter section",
                      partial(hparams_section, inputs["hparams"], rows)))


def code_note(rows: list[dict]) -> str:
    """Which code made the rows (store.provenance), most rows first."""
    counts = Counter(provenance.of_row(r).label() for r in rows)
    return "Rows made by: " + "; ".join(f"{label} ({n})" for label, n in counts.most_common()) \
        + "."


def adaptive_section(adaptive: dict | None) -> list:
    if not adaptive:
        return [Heading("Adaptive rounds"), note("no_adaptive")]
    blocks = [Heading("Adaptive rounds"), tables.adaptive_table(adaptive)]
    sets = sorted({str(p.get("downstream")) for r in adaptive["rounds"]
                   for p in r.get("proposals", [])})
    for ds in sets:
        blocks += figure(f"{ds}-adaptive",
                         f"Where each adaptive round placed its trials on {ds}: pretraining "
                         "images Dp (log) against round, coloured by student size.",
                         partial(fig_adaptive, adaptive["rounds"], ds, f"{ds}: adaptive rounds"))
    return blocks


def hparams_section(hparams: dict | None, rows: list[dict]) -> list:
    if not hparams:
        return [Heading("Hyper-parameters"), note("no_hparams")]
    best = {int(h): dict(v or {}) for h, v in hparams["heads"].items()}
    params = {r["heads"]: r["params"] for r in rows if r.get("params")}
    return [Heading("Hyper-parameters"), tables.hparams_table(best, params),
            *figure("hparams", "Best hyper-parameters found per model size.",
                    partial(fig_hparams, best, params, "best hyper-parameters"))]


def write_report(out: str, table=None, size_of: Callable | None = None) -> str:
    """Build OUT/report/ from whatever OUT holds (its results: TABLE, when the caller has read
    them); returns the path (or URI) of report.html. SIZE_OF(name, params) -> training images
    (data.train_size, given by the commands: the report does not import the data registry) lets
    the findings give amounts as dataset fractions."""
    out = storage.absolute(out)
    fs, root = storage.resolve(out)
    if not storage.is_remote(out) and fs.get_file_info(root).type != pafs.FileType.Directory:
        raise InputError(f"output directory {out!r} does not exist")  # object stores have no dirs
    inputs, notes = read_inputs(out, table)
    inputs["sizes"] = reading.dataset_sizes(inputs["rows"], size_of)
    blocks = build(inputs, notes, out)
    figures = {layout.report_file(f"figures/{b.name}.png"): b.png
               for b in blocks if isinstance(b, Image)}
    for rel, png in figures.items():
        storage.write_bytes(out, rel, png)
    for stale in set(storage.list_files(out, layout.report_file("figures"), ".png")) - set(figures):
        storage.delete(out, stale)  # a figure of an earlier run that this one no longer draws
    storage.write_bytes(out, layout.report_file("report.md"), to_markdown(blocks).encode("utf-8"))
    page = to_html(blocks, f"raysweep report: {out}")
    storage.write_bytes(out, layout.report_file("report.html"), page.encode("utf-8"))
    return f"{out.rstrip('/')}/report/report.html"
