"""The findings map: where distilling from smaller teachers helps, over Dp x Df, one panel per
student (and teacher set), with the boundary drawn on it -- the figure the report opens with.

Each cell is a measured (Dp, Df) point of a slice, coloured by the seed-mean paired difference
E_plain - E_distilled (blue: distilling helped; red: plain training won; white: neither), so the
colour is measurement, not law. On each Df row: D**p where the laws cross inside the measured Dp
(black diamond) with its 95 % interval as a bar, the measured turn (open circle) with its interval,
and an interval end beyond the axes as an arrow at the edge with its number (never a bar to the
edge that reads as a bound).

Left out: interpolating colour between measured Dp (a cell spans half-way to its neighbours in log
Dp; nothing is drawn where nothing was measured).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from raysweep.laws.slices import Slice
from raysweep.report import reading
from raysweep.report.figures import DPI, _log_axis, short
from raysweep.report.figures_boundary import paired_differences, slice_rows, teachers_label

SIZE_IN = (13.0, 3.6)   # one figure across the report's width; panels side by side
PANELS = 4              # panels a row; more students wrap to further rows (taller figure)
MAX_ROW_HEIGHT_IN = 3.6
CMAP = "RdBu"           # diverging: red below 0 (plain won), blue above (distilling helped)


def panel_keys(slices: list[Slice]) -> list[tuple]:
    """(student heads, teacher heads) of every slice, in order: one panel each."""
    return sorted({(s.student_heads, s.teacher_heads) for s in slices})


def cells(plain: list[dict], distilled: list[dict], key: tuple, dfs: list) -> dict:
    """Df -> {Dp: seed-mean of E_plain - E_distilled} for one panel's slice key."""
    out = {}
    for df in dfs:
        mine, theirs = slice_rows(plain, distilled, (key[0], key[1], df))
        diffs = paired_differences(mine, theirs)
        if diffs:
            out[df] = {dp: v[0] for dp, v in diffs.items()}
    return out


def edges(dps: list[float]) -> np.ndarray:
    """Cell edges in Dp: geometric midpoints, the outer cells as wide as their neighbours' half."""
    logs = np.log(sorted(dps))
    if len(logs) == 1:
        return np.exp(logs[0] + np.array([-0.35, 0.35]))
    mid = (logs[:-1] + logs[1:]) / 2
    return np.exp(np.concatenate([[2 * logs[0] - mid[0]], mid, [2 * logs[-1] - mid[-1]]]))


def edge_arrow(ax, x: float, y: float, right: bool, text: str) -> None:
    """An interval end beyond the axes: an arrow at the edge, with its number beside it."""
    ax.annotate(text, xy=(x, y), xytext=(-4 if right else 4, 7), textcoords="offset points",
                ha="right" if right else "left", va="bottom", fontsize=7)
    ax.plot([x], [y], marker=">" if right else "<", color="black", markersize=6, zorder=5,
            clip_on=False)


def mark_crossing(ax, c: reading.Crossing, y: float, xlim: tuple, marker: str, face) -> None:
    """A crossing on row Y: the point, its interval as a bar, ends beyond the axes as arrows."""
    lo, hi = xlim
    if c.lo is not None:
        a, b = max(c.lo, lo), min(c.hi if c.hi else math.inf, hi)
        ax.plot([a, b], [y, y], color="black", linewidth=1.6, zorder=4)
        if c.lo < lo:
            edge_arrow(ax, lo, y, False, "open" if c.lo == 0 else short(c.lo))
        if c.hi is None or c.hi > hi:
            edge_arrow(ax, hi, y, True, "open" if c.hi is None else short(c.hi))
    if lo <= c.value <= hi:
        ax.plot([c.value], [y], marker=marker, color="black", markerfacecolor=face,
                markersize=7, zorder=6)
    else:
        edge_arrow(ax, hi if c.value > hi else lo, y, c.value > hi, f"at {short(c.value)}")


def draw_panel(ax, grid: dict, slices: dict, dfs: list, norm, title: str, df_label) -> object:
    """One student's map: cells per Df row, the crossings on them; returns the colour mesh."""
    mesh = None
    every = sorted({dp for row in grid.values() for dp in row})
    if not every:
        ax.text(0.5, 0.5, "no Dp run both ways", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="#555555")
    for i, df in enumerate(dfs):
        row = grid.get(df, {})
        if row:
            dps = sorted(row)
            mesh = ax.pcolormesh(edges(dps), [i - 0.45, i + 0.45],
                                 np.array([[row[d] for d in dps]]), cmap=CMAP, norm=norm)
    xlim = (edges(every)[0], edges(every)[-1]) if every else (1.0, 10.0)
    for i, df in enumerate(dfs):
        s = slices.get(df)
        if s is None:
            continue
        for c, marker, face in ((reading.law_crossing(s), "D", "black"),
                                (reading.measured_crossing(s), "o", "white")):
            if c is not None:
                mark_crossing(ax, c, i + (0.0 if marker == "D" else 0.22), xlim, marker, face)
    ax.set_xscale("log")
    ax.set_xlim(*xlim)
    _log_axis(ax.xaxis, every)
    ax.set_ylim(-0.6, len(dfs) - 0.4)
    ax.set_yticks(range(len(dfs)), [df_label(df) for df in dfs], fontsize=8)
    ax.set_xlabel("pretraining images Dp", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title, fontsize=9)
    return mesh


def fig_findings_map(plain: list[dict], distilled: list[dict], slices: list[Slice],
                     df_label=short, title: str = ""):
    """The map of one downstream set (its ok plain and distilled rows, its boundary slices)."""
    keys = panel_keys(slices) or sorted({(r["heads"], tuple(r["teacher_heads"]))
                                         for r in distilled})
    dfs = sorted({r["df"] for r in distilled} | {s.df for s in slices if s.df})
    grids = {k: cells(plain, distilled, k, dfs) for k in keys}
    values = [v for g in grids.values() for row in g.values() for v in row.values()]
    reach = max([abs(v) for v in values] + [1e-3])
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-reach, vmax=reach)
    nrows = max(1, math.ceil(len(keys) / PANELS))
    fig = Figure(figsize=(SIZE_IN[0], min(SIZE_IN[1], MAX_ROW_HEIGHT_IN) * nrows), dpi=DPI,
                 layout="constrained")
    axes = fig.subplots(nrows, min(PANELS, max(len(keys), 1)), squeeze=False)
    mesh = None
    for ax, key in zip(axes.flat, keys):
        mine = {s.df: s for s in slices if (s.student_heads, s.teacher_heads) == key}
        got = draw_panel(ax, grids[key], mine, dfs, norm,
                         f"{key[0]}-head student, teachers {teachers_label(key[1])}", df_label)
        mesh = got or mesh
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    if mesh is not None:
        bar = fig.colorbar(mesh, ax=axes, shrink=0.9, pad=0.01)
        bar.set_label("plain - distilled error\n> 0: distilling helped", fontsize=8)
    fig.legend(handles=legend_handles(), loc="outside lower center", ncols=4, fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def legend_handles() -> list:
    return [Line2D([], [], marker="D", color="black", linewidth=1.6,
                   label="D**p, the laws' crossing, with its 95 % interval"),
            Line2D([], [], marker="o", color="black", markerfacecolor="white", linewidth=1.6,
                   label="measured turn (seed means), with its 95 % interval"),
            Line2D([], [], marker=">", color="black", linestyle="none",
                   label="interval end or value beyond the axis (its number)")]
