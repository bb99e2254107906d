"""Figures of small-to-large distillation and the search around it: distilled against plain over Dp
(paper Fig. 5), the difference F(Dp) = E_plain - E_distilled with D*p and D**p (paper Fig. 6), where
each adaptive round placed its trials, and the best hyper-parameters against model size.

A distillation slice is (student heads, teacher heads, Df): the boundary is located per slice, so
each gets its own pair of figures. Measured differences pair a plain and a distilled trial with the
same Dp and seed, so seed-to-seed noise common to both cancels.

Left out: drawing the boundary of every slice on one axis (their Dp ranges overlap and the bands
would hide each other; the boundary table lists them side by side).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.ticker import FuncFormatter

from raysweep.laws.measured import paired_by_dp
from raysweep.laws.slices import Slice
from raysweep.report.figures import (
    draw_points,
    head_colour,
    law_ok,
    legend_entry,
    legend_outside,
    log_grid,
    mean_by,
    new_figure,
    note_axes,
    predict,
    short,
    style_axes,
)

OFF_PLOT = 10.0  # a D*p / D**p more than 10x beyond the measured Dp is named, not drawn
BAR_HEIGHTS = {"d_star": 0.93, "d_cross": 0.84}  # axes fraction of an open interval's bar
BOUNDARY_MARKS = {  # Slice field -> (its interval, line style, legend text)
    "d_star": (lambda s: s.d_star_ci, "--", "$D^{*}_p$ (advantage peaks)"),
    "d_cross": (Slice.cross_interval, "-", "$D^{**}_p$ (plain overtakes)"),
}


def teachers_label(teachers) -> str:
    return "+".join(str(h) for h in teachers) + " heads" if teachers else "no teacher"


def slice_rows(plain: list[dict], distilled: list[dict], key: tuple) -> tuple[list, list]:
    """The plain and distilled ok rows of one slice key (student heads, teacher heads, Df)."""
    student, teachers, df = key
    mine = [r for r in plain if r["heads"] == student and r["df"] == df]
    theirs = [r for r in distilled if r["heads"] == student and r["df"] == df
              and tuple(r["teacher_heads"]) == tuple(teachers)]
    return mine, theirs


def paired_differences(plain: list[dict], distilled: list[dict]) -> dict:
    """Dp -> (mean, sd, n) of E_plain - E_distilled over seeds run both ways (positive = distilling
    helped). Rows are one slice's; a Dp measured only one way gives no difference."""
    return {dp: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for dp, v in paired_by_dp(plain, distilled).items()}


def _inputs(rows: list[dict], grid) -> dict:
    """Law inputs along a Dp grid for one slice: its params, Df and (distilled) teacher params."""
    r = rows[0]
    inputs = {"dp": grid, "params": r["params"], "df": r["df"]}
    if r.get("teacher_params") is not None:
        inputs["teacher_params"] = r["teacher_params"]
    return inputs


def fig_distill_vs_plain(plain: list[dict], distilled: list[dict], key: tuple, laws: dict,
                         title: str):
    """Top-1 error of the student trained plainly (solid, filled) and distilled (dashed, open)
    against Dp, with each fitted law (eq. 1, eq. 4) as a line when it exists."""
    fig, axes = new_figure("distill")
    ax = axes[0, 0]
    mine, theirs = slice_rows(plain, distilled, key)
    colour = head_colour(key[0])
    dps = [r["dp"] for r in mine + theirs]
    grid = log_grid(min(dps), max(dps)) if dps else None
    series = ((mine, laws.get("error"), "plain transfer", "-", "o", colour),
              (theirs, laws.get("distilled_error"), f"distilled from {teachers_label(key[1])}",
               "--", "^", "white"))
    for rows, law, label, line, marker, face in series:
        if not rows:
            continue
        fitted = law_ok(law)
        means = {k[0]: v for k, v in mean_by(rows, ("dp",), "error").items()}
        draw_points(ax, means, colour, "none" if fitted else ":", marker, face)
        if fitted:
            ax.plot(grid, predict(law, _inputs(rows, grid)), color=colour, linestyle=line,
                    linewidth=1.5)
        legend_entry(ax, label + (" (fit)" if fitted else ""), colour, line if fitted else ":",
                     marker, face)
    if not dps:
        note_axes(ax, "no ok trials in this slice")
    style_axes(ax, "dp", "error", title, xvalues=dps)
    legend_outside(fig, ax)
    return fig


def _x_range(dps: list[float], marks: list[float]) -> tuple[float, float]:
    """Measured Dp range, widened to show marks within OFF_PLOT of it."""
    lo, hi = min(dps), max(dps)
    for m in marks:
        if lo / OFF_PLOT <= m <= hi * OFF_PLOT:
            lo, hi = min(lo, m), max(hi, m)
    return lo / 1.3, hi * 1.3


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _end(x: float) -> str:
    """An interval's end: 'open' at 0 or infinity (laws/intervals.py), else its images."""
    return short(x) if _finite(x) else "open"


def _mark(ax, bslice: Slice, field: str, xlim: tuple[float, float]) -> None:
    """A boundary value as a vertical line, its interval as a shaded band where it lies inside
    the axes, else as a bar with open ends and its numbers (open_interval)."""
    interval, line, text = BOUNDARY_MARKS[field]
    value, ci = getattr(bslice, field), interval(bslice)
    if not _finite(value):
        return
    inside = xlim[0] <= value <= xlim[1]
    label = f"{text} = {short(value)}" + ("" if inside else " (off plot)")
    if not inside:  # named in the legend only
        ax.plot([], [], color="black", linestyle=line, linewidth=1, label=label)
        return
    ax.axvline(value, color="black", linestyle=line, linewidth=1, label=label)
    if not ci:
        return
    words = f"95 % interval [{_end(ci[0])}, {_end(ci[1])}]"
    if _finite(ci[0]) and _finite(ci[1]) and xlim[0] <= ci[0] and ci[1] <= xlim[1]:
        ax.axvspan(ci[0], ci[1], color="black", alpha=0.12, linewidth=0, label=words)
    else:   # shading clipped to the axes would read as a bound: a bar with open ends instead
        open_interval(ax, ci, xlim, BAR_HEIGHTS[field], line, words + " (runs off the plot)")


def open_interval(ax, ci, xlim: tuple[float, float], height: float, line: str,
                  label: str) -> None:
    """An interval reaching beyond the axes: a bar near the top over its visible part, an arrow
    at each end it runs past, and its numbers beside it."""
    y = ax.get_xaxis_transform()   # x in data, y in axes fractions
    lo, hi = max(ci[0], xlim[0]), min(ci[1], xlim[1])
    ax.plot([lo, hi], [height, height], color="black", linestyle=line, linewidth=1.5,
            transform=y, label=label)
    for end, edge, marker in ((ci[0], xlim[0], "<"), (ci[1], xlim[1], ">")):
        if (end < edge) if marker == "<" else (end > edge):
            ax.plot([edge], [height], marker=marker, color="black", markersize=6, transform=y,
                    clip_on=False)
    ax.text((lo * hi) ** 0.5, height + 0.02, f"[{_end(ci[0])}, {_end(ci[1])}]", fontsize=7,
            ha="center", va="bottom", transform=y)


def fig_boundary(plain: list[dict], distilled: list[dict], key: tuple, laws: dict,
                 bslice: Slice | None, title: str):
    """F(Dp) = E_plain - E_distilled: measured paired differences (points), the fitted difference
    eq. 1 - eq. 4 (line), D*p and D**p with their 95 % intervals (lines; shaded bands, or bars
    with open ends where an interval runs off the plot)."""
    fig, axes = new_figure("boundary")
    ax = axes[0, 0]
    mine, theirs = slice_rows(plain, distilled, key)
    diffs = paired_differences(mine, theirs)
    marks = [getattr(bslice, f) for f in BOUNDARY_MARKS if bslice and _finite(getattr(bslice, f))]
    dps = list(diffs) or [r["dp"] for r in mine + theirs]
    if not dps:
        note_axes(ax, "no plain and distilled trials to pair in this slice")
        return fig
    xlim = _x_range(dps, marks)
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    if diffs:
        draw_points(ax, diffs, head_colour(key[0]))
        legend_entry(ax, "measured (paired by seed)", head_colour(key[0]), "none")
    if law_ok(laws.get("error")) and law_ok(laws.get("distilled_error")) and mine and theirs:
        grid = log_grid(*xlim)
        fitted = (predict(laws["error"], _inputs(mine, grid))
                  - predict(laws["distilled_error"], _inputs(theirs, grid)))
        ax.plot(grid, fitted, color=head_colour(key[0]), linewidth=1.5, label="fitted F(Dp)")
    for field in BOUNDARY_MARKS if bslice else ():
        _mark(ax, bslice, field, xlim)
    if bslice and _finite(bslice.model_free_cross):
        free, ci = bslice.model_free_cross, bslice.model_free_cross_ci
        words = f" [{short(ci[0])}, {short(ci[1])}]" if ci else ""
        ax.scatter([free], [0.0], marker="X", color="black", zorder=4,
                   label=f"model-free crossing = {short(free)}{words}")
        if ci:  # the seeds' 95 % interval, as a bar along the zero line
            ax.plot(ci, [0.0, 0.0], color="black", linewidth=3, alpha=0.5, zorder=3,
                    solid_capstyle="butt")
    ax.set_xlim(*xlim)
    status = bslice.status if bslice else "no boundary.json entry"
    if status != "ok":  # wrapped: a long status ran into the legend beside the axes
        title += "\n" + textwrap.fill(f"boundary: {status}", 44)
    style_axes(ax, "dp", "E_plain - E_distilled (top-1 error)\nabove 0: distillation better",
               title,
               xvalues=[*dps, *(m for m in marks if xlim[0] <= m <= xlim[1])])
    legend_outside(fig, ax)
    return fig


def fig_adaptive(rounds: list[dict], downstream: str, title: str):
    """Dp of each proposed trial (log y) against the round that placed it; colour = student size,
    sizes side by side within a round."""
    fig, axes = new_figure("adaptive")
    ax = axes[0, 0]
    props = [(r.get("round", i + 1), p) for i, r in enumerate(rounds)
             for p in r.get("proposals", []) if p.get("downstream") == downstream]
    heads = sorted({p["student_heads"] for _, p in props})
    for i, h in enumerate(heads):
        offset = (i - (len(heads) - 1) / 2) * 0.12  # rounds are 1 apart; 0.12 keeps sizes apart
        pts = [(rnd + offset, p["dp"]) for rnd, p in props if p["student_heads"] == h]
        ax.scatter(*zip(*pts), color=head_colour(h), s=28, label=f"{h} heads (student)")
    ax.set_xticks(sorted({rnd for rnd, _ in props}))
    style_axes(ax, "round", "dp", title, yvalues=[p["dp"] for _, p in props])
    legend_outside(fig, ax)
    return fig


# Hyper-parameter -> (axis label with unit, log scale)
HPARAM_AXES = {"lr": ("peak learning rate", True), "weight_decay": ("AdamW weight decay", True),
               "warmup_epochs": ("warm-up (epochs)", False)}


def fig_hparams(best: dict[int, dict], params_by_heads: dict[int, int], title: str):
    """Best value of each searched hyper-parameter against model size (at its head count; the
    legend gives parameters: log-spaced parameter ticks crowd in a narrow panel), one panel each."""
    names = sorted({k for v in best.values() for k in v}, key=lambda k: (k not in HPARAM_AXES, k))
    fig, axes = new_figure("hparams", 1, max(len(names), 1))
    heads = sorted(best)
    for ax, name in zip(axes.flat, names):
        stage, _, key = name.rpartition(".")  # hparams.yaml names a stage: finetune.lr
        label, log = HPARAM_AXES.get(key, (key, False))
        label = f"{stage} {label}".strip()
        pts = [(h, best[h][name]) for h in heads if isinstance(best[h].get(name), (int, float))]
        ax.scatter(*zip(*pts), c=[head_colour(h) for h, _ in pts], s=36)
        values = [v for _, v in pts]
        ax.set_yscale("log" if log and min(values) > 0 and max(values) > 10 * min(values)
                      else "linear")  # log only where the values span a decade
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.set_xticks(heads)
        ax.set_xlim(heads[0] - 1, heads[-1] + 1)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    for h in heads:
        legend_entry(axes[0, 0], f"{h} heads ({short(params_by_heads.get(h))} params)",
                     head_colour(h), "none")
    legend_outside(fig, axes[0, 0])
    fig.supxlabel("attention heads (model size)", fontsize=10)
    fig.suptitle(title, fontsize=10)
    return fig
