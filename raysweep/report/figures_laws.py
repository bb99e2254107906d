"""Figures of the plain-transfer laws (paper Figs. 2-4 and 7-15) and the parity plot of every fit.

Each scaling figure shows one slice of the grid: measured points (mean over seeds, bars +-1 sd when
there are several) and the fitted law evaluated at that slice's other inputs. Which slice (the
largest Df for the Dp figure, and so on) is the caller's choice, passed in `fixed`, so the caption
can say it. Without a fitted law the points are joined by dotted lines instead.

Left out: facets over every Df / Dp (one slice keeps a figure readable; the parity plot shows every
point against its law), and log-scaled error axes (errors here span well under a decade).
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from raysweep.laws.entries import LawEntry
from raysweep.report.figures import (
    LAWS,
    draw_points,
    head_colour,
    law_info,
    law_inputs,
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

MAX_DP_CURVES = 5  # curves per model-size figure: more shades of grey stop being told apart


def _at(rows: list[dict], fixed: dict) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in fixed.items())]


def _params_by_heads(rows: list[dict]) -> dict[int, int]:
    return {r["heads"]: r["params"] for r in rows}


def fig_vs_data(rows: list[dict], law: LawEntry | None, x: str, target: str, fixed: dict,
                title: str):
    """Error or cross-entropy against Dp or Df (log x), one curve per model size.

    rows: ok rows of one downstream set and stage; fixed: the other amount, e.g. {"df": 1500}.
    """
    if x not in ("dp", "df"):
        raise ValueError(f"x must be 'dp' or 'df', got {x!r}")
    fig, axes = new_figure("scaling")
    ax = axes[0, 0]
    sel = _at(rows, fixed)
    params = _params_by_heads(sel)
    points = mean_by(sel, ("heads", x), target)
    grid = log_grid(min(k[1] for k in points), max(k[1] for k in points)) if points else None
    fitted = law_ok(law)
    for heads in sorted(params):
        means = {k[1]: v for k, v in points.items() if k[0] == heads}
        if not means:
            continue
        colour = head_colour(heads)
        draw_points(ax, means, colour, "none" if fitted else ":")
        if fitted:
            inputs = {**fixed, "params": params[heads], x: grid}
            ax.plot(grid, predict(law, inputs), color=colour, linewidth=1.5)
        legend_entry(ax, f"{heads} heads ({short(params[heads])} params)", colour,
                     "-" if fitted else ":")
    style_axes(ax, x, target, title, xvalues=[k[1] for k in points])
    legend_outside(fig, ax)
    return fig


def _dp_subset(dps: list[int]) -> list[int]:
    """At most MAX_DP_CURVES values, spread evenly over the sorted list (ends kept)."""
    if len(dps) <= MAX_DP_CURVES:
        return dps
    idx = np.unique(np.linspace(0, len(dps) - 1, MAX_DP_CURVES).round().astype(int))
    return [dps[i] for i in idx]


def fig_vs_size(rows: list[dict], law: LawEntry | None, target: str, fixed: dict, title: str):
    """Error or cross-entropy against parameters (log x), one grey curve per Dp (light = few
    images); markers take the model size's colour as everywhere else."""
    fig, axes = new_figure("scaling")
    ax = axes[0, 0]
    sel = _at(rows, fixed)
    params = _params_by_heads(sel)
    points = mean_by(sel, ("dp", "heads"), target)
    dps = _dp_subset(sorted({k[0] for k in points}))
    shades = np.linspace(0.4, 0.95, len(dps)) if len(dps) > 1 else [0.8]  # light = few images
    greys = colormaps["Greys"](shades)
    grid = log_grid(min(params.values()), max(params.values())) if params else None
    fitted = law_ok(law)
    for dp, grey in zip(dps, greys):
        mine = [(params[k[1]], *v, k[1]) for k, v in points.items() if k[0] == dp]
        xs, means, sds, ns, heads = zip(*sorted(mine))
        label = f"Dp = {short(dp)} images"
        if fitted:
            inputs = {**fixed, "dp": dp, "params": grid}
            ax.plot(grid, predict(law, inputs), color=grey, linewidth=1.5, label=label)
        else:
            ax.plot(xs, means, color=grey, linestyle=":", linewidth=1, label=label)
        yerr = np.where(np.asarray(ns) > 1, sds, np.nan)
        ax.errorbar(xs, means, yerr=yerr, fmt="none", ecolor=grey, capsize=2, linewidth=1)
        ax.scatter(xs, means, c=[head_colour(h) for h in heads], edgecolors=[grey],
                   s=36, zorder=3)
    for heads in sorted(params):  # colour key for the markers
        ax.scatter([], [], color=head_colour(heads), s=36, label=f"{heads} heads")
    style_axes(ax, "params", target, title, xvalues=params.values())
    legend_outside(fig, ax)
    return fig


def _parity_panel(ax, name: str, rows: list[dict], law: LawEntry | None) -> None:
    stage, target, eq = law_info(name).stage, law_info(name).target, law_info(name).equation
    if not law_ok(law):
        reason = law.status if law is not None and law.status is not None else "not in fits.json"
        note_axes(ax, f"{name} ({eq}): not fitted\n{reason}")
        return
    needed = list(law_inputs(law))
    use = [r for r in rows if all(r.get(k) is not None for k in [target, *needed])]
    if not use:
        note_axes(ax, f"{name} ({eq}): no {stage} results to compare")
        return
    measured = np.array([r[target] for r in use], dtype=float)
    predicted = predict(law, {k: np.array([r[k] for r in use], dtype=float) for k in needed})
    ax.scatter(measured, predicted, c=[head_colour(r["heads"]) for r in use], s=14, alpha=0.8)
    lo = float(min(measured.min(), predicted.min()))
    hi = float(max(measured.max(), predicted.max()))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", linewidth=0.8)
    residual = float(np.mean(np.abs(predicted - measured)))
    ax.text(0.03, 0.97, f"n = {len(use)}\nmean |residual| = {residual:.3g}", va="top",
            fontsize=8, transform=ax.transAxes)
    ax.set_title(f"{name} ({eq}), form {law.selected or 'paper'}", fontsize=9)
    ax.set_xlabel(f"measured {target}", fontsize=8)
    ax.set_ylabel(f"predicted {target}", fontsize=8)
    ax.grid(True, alpha=0.3)


def fig_parity(rows_by_stage: dict[str, list[dict]], laws: dict, title: str):
    """Predicted against measured for each law of one downstream set (on the line = fitted well);
    every ok trial is a point, coloured by its model size. One panel per law of the catalogue,
    two columns, as many rows as that takes (a spare panel is left blank)."""
    ncols = 2
    fig, axes = new_figure("parity", -(-len(LAWS) // ncols), ncols)
    for ax, name in zip(axes.flat, LAWS):
        _parity_panel(ax, name, rows_by_stage.get(LAWS[name].stage, []), laws.get(name))
    for ax in list(axes.flat)[len(LAWS):]:
        ax.set_axis_off()
    heads = sorted({r["heads"] for rows in rows_by_stage.values() for r in rows})
    for h in heads:
        axes[0, 0].scatter([], [], color=head_colour(h), s=14, label=f"{h} heads")
    legend_outside(fig, axes[0, 0])
    fig.suptitle(title, fontsize=10)
    return fig
