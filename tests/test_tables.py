"""The boundary's tables on hand-made slices: the Theorem 1 table's reading per slice, and
teachers reused from one Dp named with it in both tables. The tables of a whole report, built from
a grid with known laws, are tested in test_report.py."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from test_report import DS

from raysweep.laws import boundary
from raysweep.laws.measured import measured_ends
from raysweep.laws.slices import Slice
from raysweep.report.tables import boundary_table, theorem1_table
from raysweep.store import results
from raysweep.sweep import plan, spec


def test_theorem1_table_says_per_slice_what_the_measurements_show():
    cases = {  # Df -> plain minus distilled error per Dp and seed
        100: {1_000: [0.05, 0.07], 64_000: [-0.04, -0.06]},     # helps, then hurts: shown
        200: {1_000: [-0.05, -0.07], 64_000: [-0.04, -0.06]},   # hurts at both ends
        300: {1_000: [0.0, 0.02], 64_000: [-0.04, -0.06]},      # no help beyond noise
        400: {1_000: [0.05], 64_000: [-0.04, -0.06]},           # one seed: no standard error
    }
    slices = [Slice.from_json({"downstream": DS, "student_heads": 8, "teacher_heads": [2],
                               "df": df} | measured_ends(per_dp)) for df, per_dp in cases.items()]
    table = theorem1_table(slices)
    assert "in 1 of the 3 slices that can tell (4 in all; by Df: 100: 1 of 1, 200: 0 of 1, " \
        "300: 0 of 1)" in table.caption     # Df 400 cannot tell: left out of the breakdown
    assert [row[-1] for row in table.rows] == [
        "shown", "not shown: distilling hurts at both ends",
        "not shown: no help at the smallest Dp",
        "cannot tell: one seed at an end, no standard error"]
    assert table.rows[0][4:8] == ["1k", "+0.060 ± 0.010 (2 seeds)", "64k",
                                  "-0.050 ± 0.010 (2 seeds)"]
    assert table.rows[3][5] == "+0.050 (1 seed)"
    assert theorem1_table(slices[:1]).caption.endswith("(1 in all)")   # one Df: no breakdown


@pytest.mark.parametrize("teacher_dp", [None, 1.0])
def test_teachers_reused_from_one_dp_are_named_with_it(teacher_dp):
    """Result records of the smoke plan (real configs, teacher trial ids): a slice whose teachers
    were pretrained on one Dp that is not the student's says which, in boundary.json and in both
    tables; same-Dp teachers are labelled by their sizes alone."""
    raw = yaml.safe_load((pathlib.Path(__file__).parent.parent / "sweeps/smoke.yaml").read_text())
    if teacher_dp is not None:
        raw["distill"]["teacher_dp"] = teacher_dp
    trials = plan.plan(spec.parse(raw))
    rows = [results.record(t, status="ok", error=0.5, loss=1.0) for t in trials]
    slices = boundary.boundaries(rows, {})
    full = max(t.config["dp"] for t in trials)
    assert slices and all(s.teacher_dp == (full if teacher_dp else None) for s in slices)
    for table in (boundary_table(slices), theorem1_table(slices)):
        assert {row[2] for row in table.rows} == (
            {f"1+2 heads (Dp {full})"} if teacher_dp else {"1+2 heads"})


def test_boundary_caption_says_why_every_slice_has_one_d_star():
    def one(ds, df, star):
        return Slice.from_json({"downstream": ds, "student_heads": 8, "teacher_heads": [2],
                                "df": df, "d_star": star, "d_star_ci": [star / 2, star * 2],
                                "status": "ok"})
    why = "so every slice of a downstream set has the same D*p"
    assert why in boundary_table([one("a", 10, 33.2), one("a", 100, 33.2),
                                  one("b", 10, 5.0)]).caption
    assert why not in boundary_table([one("a", 10, 33.2), one("a", 100, 40.0)]).caption
    assert why not in boundary_table([one("a", 10, 33.2)]).caption   # one slice: nothing to say
    assert why not in boundary_table([one("a", 10, 33.2), one("b", 10, 5.0)]).caption
