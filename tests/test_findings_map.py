"""The findings map and the boundary figure's intervals, drawn from hand-made rows and slices: the
map's colours are the measured seed means, the boundary sits on its Df row, and an interval that
runs off the axes is an open-ended bar with its numbers, never a sheet over the whole plot; the
report opens with the findings."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.patches import Polygon, Rectangle
from test_report import grid_report  # noqa: F401  (the fixture: a report of a known grid)

from raysweep.laws.boundary import STATUS
from raysweep.laws.slices import Slice
from raysweep.report.figures_boundary import fig_boundary
from raysweep.report.figures_map import fig_findings_map

DPS, DFS = (1_000, 4_000, 16_000, 64_000), (300, 1_500)


def rows(stage: str, error) -> list[dict]:
    """One student (4 heads, teacher 2), every Dp x Df x 2 seeds; ERROR(dp, df, seed)."""
    return [{"stage": stage, "heads": 4, "teacher_heads": (2,) if stage == "distill" else (),
             "dp": dp, "df": df, "seed": s, "params": 9.5e6, "error": error(dp, df, s),
             "teacher_params": 2.4e6 if stage == "distill" else None}
            for dp in DPS for df in DFS for s in (0, 1)]


PLAIN = rows("finetune", lambda dp, df, s: 0.5 - 0.02 * np.log10(dp) + 0.001 * s)
# distilling helps by 0.03 at Dp 1k, falling by 0.02 a factor of 4: it turns near Dp 6k
DISTILLED = rows("distill", lambda dp, df, s: 0.5 - 0.02 * np.log10(dp) - 0.03
                 + 0.02 * np.log(dp / 1_000) / np.log(4))


def a_slice(df, **kw) -> Slice:
    """A slice as boundary.json gives it (Slice.from_json)."""
    return Slice.from_json({"downstream": "digits", "student_heads": 4, "teacher_heads": [2], "df": df,
            "status": STATUS["ok"], "d_cross": 6_000.0, "d_cross_ci": [4_000.0, 9_000.0],
            "no_cross_fraction": 0.0, "model_free_cross": 6_500.0,
            "model_free_cross_ci": [5_000.0, 8_000.0], "model_free_no_cross_fraction": 0.0} | kw)


def test_the_map_colours_each_measured_point_by_its_seed_mean_difference():
    fig = fig_findings_map(PLAIN, DISTILLED, [a_slice(df) for df in DFS])
    ax = fig.axes[0]
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == len(DFS)   # one row of cells per Df
    # plain - distilled per seed: 0.03 - 0.02 log4(dp / 1k) + 0.001 seed; seeds 0, 1: + 0.0005
    expected = [0.0305 - 0.02 * np.log(dp / 1_000) / np.log(4) for dp in DPS]
    for mesh in meshes:
        assert np.asarray(mesh.get_array()).ravel() == pytest.approx(expected, abs=1e-9)
    assert ax.get_xlim()[0] < DPS[0] and ax.get_xlim()[1] > DPS[-1]


def test_the_map_draws_each_boundary_on_its_df_row():
    fig = fig_findings_map(PLAIN, DISTILLED, [a_slice(300), a_slice(1_500, d_cross=12_000.0,
                                                                      d_cross_ci=[9e3, 15e3])])
    ax = fig.axes[0]
    diamonds = [line.get_xydata()[0] for line in ax.lines if line.get_marker() == "D"]
    assert sorted(map(tuple, diamonds)) == [(6_000.0, 0.0), (12_000.0, 1.0)]   # Df rows 0, 1


def test_an_interval_beyond_the_map_is_an_arrow_with_its_number():
    wide = a_slice(300, d_cross_ci=[40.0, 2e7], model_free_cross=None)
    fig = fig_findings_map(PLAIN, DISTILLED, [wide])
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"40", "20M"} <= texts
    arrows = [line.get_marker() for line in ax.lines if line.get_marker() in ("<", ">")]
    assert sorted(arrows) == ["<", ">"]
    opened = fig_findings_map(PLAIN, DISTILLED, [a_slice(300, no_cross_fraction=0.2,
                                                         model_free_cross=None)]).axes[0]
    assert "open" in {t.get_text() for t in opened.texts}
    assert "9k" not in {t.get_text() for t in opened.texts}


def boundary_axes(bslice: Slice):
    plain = [r for r in PLAIN if r["df"] == 300]
    distilled = [r for r in DISTILLED if r["df"] == 300]
    return fig_boundary(plain, distilled, (4, (2,), 300), {}, bslice, "t").axes[0]


def sheets(ax) -> list:
    return [p for p in ax.patches if isinstance(p, (Polygon, Rectangle))]


def test_an_interval_inside_the_boundary_plot_is_shaded():
    ax = boundary_axes(a_slice(300))
    assert len(sheets(ax)) == 1
    assert any("95 % interval [4k, 9k]" == text for text in ax.get_legend_handles_labels()[1])


def test_an_interval_running_off_the_boundary_plot_is_an_open_bar_with_its_numbers():
    ax = boundary_axes(a_slice(300, d_cross_ci=[0.039, 1.9e6]))
    assert not sheets(ax)   # no grey sheet over the whole plot
    labels = ax.get_legend_handles_labels()[1]
    assert "95 % interval [0.039, 1.9M] (runs off the plot)" in labels
    assert "[0.039, 1.9M]" in {t.get_text() for t in ax.texts}
    ends = [line.get_marker() for line in ax.lines if line.get_marker() in ("<", ">")]
    assert sorted(ends) == ["<", ">"]


def test_the_report_opens_with_the_findings_and_the_map(grid_report):  # noqa: F811
    out, html_path, _ = grid_report
    md = (out / "report" / "report.md").read_text()
    opening = md.split("## Runs")[0]
    assert "## What the study found" in opening and "### digits" in opening
    assert "Plain training overtakes distillation from the smaller teachers" in opening
    assert "![digits-findings-map](figures/digits-findings-map.png)" in opening
    assert "| 4h <- 2h, Df 300 | helps below, plain wins above Dp" in opening
    assert md.index("## Distillation boundary") < md.index("## Fitted laws")
    with open(html_path, encoding="utf-8") as f:
        page = f.read()
    assert '<figure id="digits-findings-map" class="wide">' in page
    assert page.index("What the study found") < page.index("<h2>Runs</h2>")
