"""What every report figure shares: one colour per model size, axis labels with units, one size per
figure kind, legends outside the data, and the fitted laws of fits.json evaluated for drawing.

The figures themselves live in `plots_laws` (scaling curves, parity) and `plots_boundary`
(distilled vs plain, F(Dp), adaptive rounds, hyper-parameters); each returns a
`matplotlib.figure.Figure` built directly (Agg canvas on save), never through pyplot, so there is no
global state to leak between figures, tests or Ray workers.

Left out on purpose: themes and interactive output (the report is static PNG inside md/html), and
per-figure colour choices -- the point is that a model size has the same colour everywhere.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from raysweep.laws.catalogue import LAWS, LawSpec
from raysweep.laws.entries import LawEntry

MAX_TICKS = 8  # labelled ticks per log axis before they crowd at 6.4 in
DPI = 120  # dots per inch: 6.4 x 4.0 in -> 768 x 480 px, readable on a laptop screen and in print

# Figure kind -> size in inches (width, height). The tests read each PNG's header against this.
FIG_SIZES_IN = {
    "scaling": (6.4, 4.0),      # error or cross-entropy against Dp, Df or model size
    "parity": (8.0, 6.4),       # 2 x 2 panels, one per fitted law
    "distill": (6.4, 4.0),      # distilled against plain over Dp (paper Fig. 5)
    "boundary": (6.4, 4.0),     # F(Dp) = E_plain - E_distilled with D*p, D**p (paper Fig. 6)
    "adaptive": (6.4, 4.0),     # where each adaptive round placed its trials
    "hparams": (8.0, 3.2),      # best hyper-parameters against model size, one panel each
}

# Attention heads (head dim 64) -> colour, fixed across every figure. 2/4/6/8 are the paper's sizes
# and take the four most distinct tab10 colours; other sizes a sweep may add come after.
HEAD_COLOURS = {2: "#1f77b4", 4: "#ff7f0e", 6: "#2ca02c", 8: "#d62728", 1: "#9467bd",
                3: "#8c564b", 12: "#e377c2", 16: "#17becf", 10: "#bcbd22", 5: "#7f7f7f"}
SPARE_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")

# Column of the results / input of a law -> axis label with its unit.
AXIS_LABELS = {
    "dp": "pretraining images Dp",
    "df": "fine-tuning images Df",
    "params": "parameters (model size M)",
    "teacher_params": "teacher parameters (mean)",
    "error": "top-1 error (fraction)",
    "loss": "cross-entropy (nats)",
    "round": "adaptive round",
}
LOG_AXES = {"dp", "df", "params", "teacher_params"}  # amounts and sizes span decades (paper: log x)

def law_info(name: str) -> LawSpec:
    """The catalogue entry of a law name; unknown names fail with the known ones."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; expected one of {sorted(LAWS)}")
    return LAWS[name]


def head_colour(heads: int) -> str:
    return HEAD_COLOURS.get(int(heads), SPARE_COLOURS[int(heads) % len(SPARE_COLOURS)])


def new_figure(kind: str, nrows: int = 1, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    """A Figure of the kind's fixed size with constrained layout (room for outside legends)."""
    if kind not in FIG_SIZES_IN:
        raise ValueError(f"unknown figure kind {kind!r}; expected one of {sorted(FIG_SIZES_IN)}")
    fig = Figure(figsize=FIG_SIZES_IN[kind], dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def fig_px(kind: str) -> tuple[int, int]:
    """Pixel size (width, height) a saved figure of this kind has."""
    w, h = FIG_SIZES_IN[kind]
    return round(w * DPI), round(h * DPI)


def _log_axis(axis, values) -> None:
    """Log ticks labelled '1k', '2.4M': at the measured values when they are few and at least
    1.9x apart (a reader reads the grid off the axis), else at 1-2-5 steps."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: short(v)))
    axis.set_minor_formatter(NullFormatter())
    vals = sorted({float(v) for v in values or () if v and v > 0})
    spread = all(b / a >= 1.9 for a, b in itertools.pairwise(vals))  # labels ~0.4 in wide
    if 1 < len(vals) <= MAX_TICKS and spread:
        axis.set_major_locator(FixedLocator(vals))
    else:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))


def style_axes(ax, x: str, y: str, title: str | None = None, xvalues=None, yvalues=None) -> None:
    """Labels with units, log scale for amounts and sizes (ticks at x/yvalues when readable), a
    light grid, a short title (the caption in the report says the rest)."""
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS.get(y, y))
    for name, axis, values, set_scale in ((x, ax.xaxis, xvalues, ax.set_xscale),
                                          (y, ax.yaxis, yvalues, ax.set_yscale)):
        if name in LOG_AXES:
            set_scale("log")
            _log_axis(axis, values)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)


def legend_outside(fig: Figure, ax) -> None:
    """Legend to the right of the axes, where it cannot cover a point (no-op without labels)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)


def draw_points(ax, means: dict, colour, line: str = "none", marker: str = "o",
                face=None) -> None:
    """Measured means {x: (mean, sd, n)}; bars +-1 sd only where several seeds ran."""
    xs = sorted(means)
    yerr = [means[x][1] if means[x][2] > 1 else np.nan for x in xs]
    ax.errorbar(xs, [means[x][0] for x in xs], yerr=yerr, color=colour, linestyle=line,
                marker=marker, markersize=5, markerfacecolor=face or colour, capsize=2,
                linewidth=1)


def legend_entry(ax, label: str, colour, line: str, marker: str | None = "o", face=None):
    """One legend row showing both the marker and the line style of a series."""
    ax.plot([], [], color=colour, linestyle=line, marker=marker, markerfacecolor=face or colour,
            label=label)


def note_axes(ax, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9,
            transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def law_ok(law: LawEntry | None) -> bool:
    return (law is not None and law.ok and law.expression is not None
            and law.params is not None)


def law_inputs(law: LawEntry) -> tuple[str, ...]:
    """The inputs a fitted law (a fits.json entry) reads."""
    return law.law().form.inputs


def predict(law: LawEntry | None, inputs: dict) -> np.ndarray:
    """The fitted law's prediction (its own expression, laws/form.py) at INPUTS: images or
    parameters, arrays broadcast."""
    if not law_ok(law):
        raise ValueError(f"law for {law.target if law else None!r} is not fitted "
                         f"(status {law.status if law else 'missing'!r})")
    return law.law().predict(inputs)


def mean_by(rows: Iterable[dict], keys: tuple[str, ...], target: str) -> dict:
    """key tuple -> (mean, sd, n) of `target` over rows with a finite value (seeds average here)."""
    groups: dict = {}
    for r in rows:
        v = r.get(target)
        if v is not None and math.isfinite(v):
            groups.setdefault(tuple(r[k] for k in keys), []).append(v)
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for k, v in sorted(groups.items())}


def short(n: float | None) -> str:
    """A count for a label: 1500 -> '1.5k', 1_280_000 -> '1.28M' (3 significant digits)."""
    if n is None or not math.isfinite(n):
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


def log_grid(lo: float, hi: float, n: int = 100) -> np.ndarray:
    """n points evenly spaced in log between lo and hi (a single value widens by 1.5x each way)."""
    if hi <= lo:
        lo, hi = lo / 1.5, hi * 1.5
    return np.geomspace(lo, hi, n)
