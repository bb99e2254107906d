"""The findings' sentences on hand-made fits and boundaries: a crossing, no crossing, an unbounded
interval, the phenomenon absent, one seed. They must say what the numbers show and nothing more;
the terminal's summary must fit the last screen."""

from __future__ import annotations

import json
import math

import pytest

from raysweep.laws.boundary import STATUS
from raysweep.laws.slices import Slice
from raysweep.report import findings, reading, summary
from raysweep.report.findings import slice_cell, slice_finding

S = Slice.from_json   # a slice as boundary.json gives it

SIZES = {"upstream": 1_300_000, "cifar100": 50_000}


def end(dp, mean, se, seeds=2):
    return {"dp": dp, "mean": mean, "se": se, "seeds": seeds}


def a_slice(**kw) -> dict:
    base = {"downstream": "cifar100", "student_heads": 4, "teacher_heads": [2], "df": 5000,
            "status": STATUS["none"], "d_cross": None, "d_cross_ci": None,
            "no_cross_fraction": 1.0, "model_free_cross": None, "model_free_cross_ci": None,
            "model_free_no_cross_fraction": None, "theorem1": None,
            "measured_ends": {"smallest": end(65_000, 0.02, 0.005),
                              "largest": end(1_300_000, -0.02, 0.005)}}
    return base | kw


CROSSING = a_slice(status=STATUS["ok"], d_cross=400_000.0, d_cross_ci=[200_000.0, 600_000.0],
                   no_cross_fraction=0.0, theorem1=True)


def test_a_crossing_gives_the_boundary_its_interval_and_its_share_of_the_upstream_set():
    text = slice_finding(S(CROSSING), SIZES)
    assert text.startswith("helps below, plain wins above Dp 400k [200k, 600k]")
    assert "(31 % [15 %, 46 %] of the upstream set) (laws)" in text
    assert slice_cell(S(CROSSING)) == "400k [200k, 600k]"
    assert findings.slice_label(S(CROSSING), SIZES) == "4h <- 2h, Df 5k (10 %)"


def test_an_unbounded_interval_is_said_open_never_given_its_upper_number():
    open_ = CROSSING | {"no_cross_fraction": 0.3}
    text = slice_finding(S(open_), SIZES)
    assert "400k [200k, no upper end: 30% of the draws do not cross]" in text
    assert "600k" not in text and "46 %" not in text
    assert slice_cell(S(open_)) == "400k [200k, open]"


def test_an_interval_open_below_is_said_open_below():
    """More than 2.5 % of the members never favour distilling (below the plausible range)."""
    below = CROSSING | {"d_cross_ci": [0, 600_000.0], "no_cross_fraction": 0.05,
                        "no_cross_below": 0.05, "no_cross_above": 0.0}
    text = slice_finding(S(below), SIZES)
    assert "400k [no lower end: 5% of the draws never favour distilling, 600k]" in text
    assert "200k" not in text
    assert slice_cell(S(below)) == "400k [open, 600k]"


def test_old_and_new_boundary_json_give_the_same_findings():
    """An older boundary.json (no no_cross_above: its interval holds the crossing members and
    the share not crossing reads as open above) and the same slices written as this version
    writes them (Slice.to_json) give the same sentences, the same slices."""
    old = [CROSSING, CROSSING | {"df": 50_000, "no_cross_fraction": 0.3},
           a_slice(df=25_000, model_free_cross=120_000.0, model_free_cross_ci=[90_000.0, 2e5],
                   model_free_no_cross_fraction=0.1)]
    new = [S(s).to_json() for s in old]
    assert all("no_cross_above" in s for s in new) and new[1]["d_cross_ci"] == [200_000.0, None]
    fits = {"downstream": {"cifar100": {"error": law_entry()}}}
    before, after = (findings.findings(fits, b, None, SIZES) for b in (old, new))
    assert before == after
    assert any("no upper end: 30% of the draws do not cross" in t for _, t in before[0].slices)
    assert [S(s) for s in new] == [S(s) for s in old]


def test_measured_ends_that_contradict_the_laws_crossing_are_said():
    against = CROSSING | {"measured_ends": {"smallest": end(65_000, -0.03, 0.005),
                                            "largest": end(1_300_000, 0.02, 0.005)}}
    assert slice_finding(S(against), SIZES).endswith(
        "(laws); but measured, plain wins at the smallest Dp (-0.030) and distilling still helps "
        "at the largest (+0.020)")
    assert "but measured" not in slice_finding(S(CROSSING), SIZES)


def test_a_crossing_without_an_interval_says_why():
    one_seed = a_slice(model_free_cross=120_000.0, model_free_cross_ci=None)
    assert "120k (no interval: one seed a Dp)" in slice_finding(S(one_seed), SIZES)
    assert slice_cell(S(one_seed)) == "120k (no interval) meas."
    no_boot = CROSSING | {"d_cross_ci": None}
    assert "400k (no interval: no bootstrap) (31 % of the upstream set) (laws)" in \
        slice_finding(S(no_boot), SIZES)


def test_a_crossing_outside_the_measured_range_is_not_the_boundary():
    outside = a_slice(status=STATUS["outside"].format(dp=9e6), d_cross=9e6,
                      d_cross_ci=[5e6, 2e7], no_cross_fraction=0.0)
    text = slice_finding(S(outside), SIZES)
    assert "9M" not in text and "helps below" not in text
    assert text.startswith("no crossing in Dp 65k-1.3M")


def test_a_measured_turn_where_the_laws_do_not_cross_is_named_as_measured():
    measured = a_slice(model_free_cross=120_000.0, model_free_cross_ci=[90_000.0, 200_000.0],
                       model_free_no_cross_fraction=0.01)
    text = slice_finding(S(measured), SIZES)
    assert text.startswith("helps below, plain wins above Dp 120k [90k, 200k]")
    assert "(measured; the laws: no crossing)" in text
    assert slice_cell(S(measured)) == "120k [90k, 200k] meas."


@pytest.mark.parametrize("small, large, said, cell", [
    ((-0.03, 0.005), (-0.05, 0.005), ("plain training wins at both ends of the measured Dp "
                                     "65k-1.3M (beyond 2 se), no crossing"), "plain wins"),
    ((0.03, 0.005), (0.01, 0.004), ("distillation helps at both ends of the measured Dp 65k-1.3M "
                                   "(beyond 2 se), no crossing"), "distil helps"),
    ((0.01, 0.01), (-0.004, 0.01), ("no crossing in Dp 65k-1.3M; plain - distilled +0.010 at Dp "
                                   "65k, -0.004 at 1.3M (2 seeds)"), "no crossing"),
])
def test_without_a_crossing_the_ends_say_only_what_their_standard_errors_allow(small, large,
                                                                              said, cell):
    s = a_slice(measured_ends={"smallest": end(65_000, *small), "largest": end(1_300_000, *large)})
    assert slice_finding(S(s), SIZES) == said
    assert slice_cell(S(s)) == cell


def test_one_seed_claims_no_sign():
    s = a_slice(measured_ends={"smallest": end(65_000, 0.013, None, 1),
                               "largest": end(1_300_000, -0.006, None, 1)})
    text = slice_finding(S(s), SIZES)
    assert text.endswith("(1 seed): no standard error")
    assert "wins" not in text and "helps" not in text
    assert "cannot be judged" in findings.theorem1_sentence([S(s)])


def test_the_phenomenon_absent_is_said_absent():
    absent = [a_slice(df=df, theorem1=False,
                      measured_ends={"smallest": end(65_000, -0.03, 0.005),
                                     "largest": end(1_300_000, -0.05, 0.005)})
              for df in (5000, 50_000)]
    assert findings.boundary_sentence(list(map(S, absent)), SIZES) == (
        "No slice's laws or measurements cross inside the measured Dp (2 slices): the data "
        "place no boundary.")
    assert "is seen in 0 of the 2 slices that can tell." in findings.theorem1_sentence(list(map(S, absent)))


def test_the_boundary_sentence_gives_each_students_range_and_its_share():
    other = CROSSING | {"df": 50_000, "d_cross": 350_000.0}
    big = CROSSING | {"student_heads": 8, "teacher_heads": [2, 4, 6], "d_cross": 700_000.0}
    text = findings.boundary_sentence([S(CROSSING), S(other), S(big), S(a_slice(df=25_000))],
                                      SIZES)
    assert "in 3 of 4 slices: 4-head students at 350k-400k pretraining images (27-31 % of the " \
           "upstream set), 8-head students at 700k (54 %); below that, distilling helps." in text
    assert text.endswith("distilling helps.")   # every interval closed: no caveat
    open_above = CROSSING | {"d_cross_ci": [200_000.0, None]}
    outside = CROSSING | {"df": 50_000, "d_cross_ci": [0.3, 600_000.0],
                          "dp_range": [65_000.0, 1_300_000.0]}
    inside = CROSSING | {"df": 25_000, "dp_range": [65_000.0, 1_300_000.0]}
    text = findings.boundary_sentence([S(open_above), S(outside), S(inside)], SIZES)
    assert text.endswith("distilling helps. In 2 of these 3 the 95 % interval is open or runs "
                         "outside the measured Dp: the data do not yet pin where.")
    said = findings.theorem1_sentence([S(CROSSING)])
    assert "Theorem 1" in said and "seen in 1 of the 1 slices that can tell, at Df 5k." in said


def law_entry(**kw) -> dict:
    """A fits.json entry of the paper's form on Dp and size (laws.study.law_json's keys)."""
    return {"status": "ok", "expression": "E + A / dp**alpha + B / params**beta",
            "params": {"E": 0.1, "A": 11.0, "alpha": 0.415, "B": 32.0, "beta": 0.282},
            "ci": {"alpha": [0.282, 0.484]},
            "lack_of_fit": {"misfits": True, "p": 0.015}} | kw


def test_the_law_sentences_give_form_exponents_and_the_misfit():
    fits = {"downstream": {"cifar100": {"error": law_entry(),
                                        "distilled_error": {"status": "too few rows: 3 for 7"}}}}
    plain, distilled = findings.law_sentences(fits, "cifar100")
    assert plain == ("Plain error: the paper's additive form, it misses its grid means beyond the "
                     "seeds' noise (p 0.015); exponents Dp 0.415 [0.282, 0.484], M 0.282.")
    shaky = law_entry(warnings=[("params: exponent 111 outside [0, 5]; the data barely constrain "
                                "this term"), "rows: 2 points measured by several trials"])
    text = findings.law_sentences({"downstream": {"cifar100": {"error": shaky}}}, "cifar100")[0]
    assert text.endswith("M 0.282 (M: barely constrained by the data).")
    assert distilled == "Distilled error: not fitted (too few rows: 3 for 7)."


ASKS = {"two inputs": ({"dp": 71.0, "df": 1000.0}, 0.2,
                       ("most at Dp 71 x Df 1k (the rows 22 % above it, 5.0 se): the data ask "
                        "for a term joining Dp and Df")),
        "one input": ({"params": 7322.0}, -0.07,
                      ("most at M 7.32k (the rows 6.8 % below it, 1.8 se): the data ask for "
                       "another shape of the M term"))}


@pytest.mark.parametrize("at, miss, says", ASKS.values(), ids=ASKS)
def test_a_rejected_law_names_where_it_misses_most_and_the_term_asked_for(at, miss, says):
    lof = {"misfits": True, "p": 1e-4, "largest_miss": {"at": at, "miss": miss, "se": 0.04}}
    text = findings.law_sentences({"downstream": {"c": {"error": law_entry(lack_of_fit=lof)}}},
                                  "c")[0]
    assert f"(p 0.0001), {says}; exponents" in text
    kept = law_entry(lack_of_fit=lof | {"misfits": False, "p": 0.4})   # not rejected: no ask
    assert "ask for" not in findings.law_sentences({"downstream": {"c": {"error": kept}}}, "c")[0]


def test_a_selected_form_is_named_with_its_expression():
    entry = law_entry(selected="size_x_data", expression="E + A * dp**mu / params**beta",
                      params={"E": 0.1, "A": 3.0, "mu": 0.08, "beta": 0.3},
                      ci={"mu": [0.01, 0.2]}, lack_of_fit={"misfits": False, "p": 0.4})
    fits = {"downstream": {"cifar100": {"error": entry}}}
    text = findings.law_sentences(fits, "cifar100")[0]
    assert text == ("Plain error: the size_x_data form (E + A * dp**mu / params**beta), within "
                    "the seeds' noise of its grid means; exponents mu 0.08 [0.01, 0.2], M 0.3.")
    paper = law_entry(selected="paper")
    assert "the paper's additive form" in findings.law_sentences(
        {"downstream": {"cifar100": {"error": paper}}}, "cifar100")[0]


def test_the_adaptive_rounds_say_what_they_spent_and_why_they_stopped():
    doc = {"rounds": [{"round": 0}, {"round": 1}, {"round": 2}], "trials_run": 146,
           "stopped": "budget spent", "budget": {"unit": "FLOPs", "amount": 1.06e13,
                                                 "spent": 1.03e13}}
    assert findings.compute_sentence([S(CROSSING)], doc) == (
        "The adaptive rounds ran 2 round(s), 146 trials, spending 1.03e+13 of 1.06e+13 FLOPs "
        "(97%); they stopped: budget spent.")
    assert ": 1 of the 1 boundaries here have an interval wider than +-10 %." in \
        findings.compute_sentence([S(CROSSING)], None)
    narrow = CROSSING | {"d_cross_ci": [390_000.0, 410_000.0]}
    assert ": 0 of the 1 boundaries" in findings.compute_sentence([S(narrow), S(a_slice())], None)
    assert findings.compute_sentence([S(a_slice())], None).startswith(
        "More compute: no slice has a boundary")


def test_the_terminal_summary_fits_the_last_screen_and_names_what_it_cut():
    """A paper-sized boundary: 3 students x 7 Df, and two downstream sets."""
    many = [CROSSING | {"downstream": ds, "student_heads": h, "df": df}
            for ds in ("cifar100", "cifar10") for h in (4, 6, 8)
            for df in (500, 1000, 2500, 5000, 12_500, 25_000, 50_000)]
    fits = {"downstream": {ds: {"error": law_entry(), "distilled_error": law_entry()}
                           for ds in ("cifar100", "cifar10")}}
    lines = summary.summary_lines(findings.findings(fits, many, None, SIZES), SIZES)
    assert len(lines) <= summary.MAX_LINES
    assert max(map(len, lines)) <= summary.WIDTH
    assert lines[-1].endswith("more lines: report.md, or --verbose")
    assert lines[0].startswith("cifar10: where plain training overtakes distilling")
    assert any("Df 500 (1 %)" in line for line in lines)   # the table split over its Df


def test_dataset_sizes_come_from_the_rows_configs():
    from raysweep.data import train_size
    config = ('{"upstream": {"name": "fractal", "params": {"classes": 100, '
              '"images_per_class": 13000}}, "downstream": {"name": "digits", "params": {}}}')
    rows = [{"downstream": "digits", "config": config}, {"downstream": None, "config": "{}"}]
    assert reading.dataset_sizes(rows, train_size) == {"upstream": 1_300_000, "digits": 1437}
    assert reading.dataset_sizes(rows, None) == {}
    assert reading.dataset_sizes([{"downstream": "x", "config": "not json"}], train_size) == {}
    # a row that names only known sizes is skipped; a later downstream set is still found
    other = config.replace('"digits", "params": {}', '"fractal", "params": {"classes": 10, '
                           '"images_per_class": 7}')
    rows = [{"downstream": "x", "config": "not json"}] + rows + [
        {"downstream": "fractal", "config": other}]
    assert reading.dataset_sizes(rows, train_size) == {"upstream": 1_300_000, "digits": 1437,
                                                        "fractal": 70}


def test_findings_tolerate_missing_files_and_keys():
    assert findings.findings(None, None, None) == []
    only = findings.findings({"downstream": {"cifar100": {}}}, None, None)[0]
    assert only.boundary == ["No boundary.json: the boundary step has not run."]
    assert only.laws[0] == "Plain error: not fitted (no entry)."
    bare = findings.findings(None, [{"downstream": "cifar100"}], None)[0]
    assert bare.slices == [("?h <- no h, Df n/a", "cannot tell: no boundary")]


def test_a_boundary_json_the_report_cannot_read_is_a_note_not_an_exception(tmp_path):
    """boundary.json is read as Slices (report.inputs): an entry without its downstream set is
    named in a note and the report goes on without the file; an older file reads."""
    from raysweep.report import inputs
    (tmp_path / "boundary.json").write_text(json.dumps([{"student_heads": 4, "df": 10}]))
    notes: list[str] = []
    assert inputs.read_optional(str(tmp_path), "boundary", notes) is None
    assert "boundary.json could not be read" in notes[0] and "downstream" in notes[0]
    (tmp_path / "boundary.json").write_text(json.dumps([CROSSING | {"no_cross_fraction": 0.3}]))
    [s] = inputs.read_optional(str(tmp_path), "boundary", notes)
    assert s.cross_interval() == (200_000.0, math.inf) and len(notes) == 1
