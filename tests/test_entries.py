"""raysweep.laws.entries: a fits.json law entry as one typed object. Entries of real fits survive
to_json(from_json(x)) key for key; a fits.json written by the dict-built version (commit 1f38f6c,
tests/data/fits_1f38f6c) writes back byte for byte and the report says of it what that version
said; an entry from before laws were expressions reads as the report read it; a malformed entry
is an InputError naming its field, and a note in the report."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pathlib

import numpy as np
import pytest

from raysweep.errors import InputError
from raysweep.laws import study
from raysweep.laws.entries import LawEntry, json_doc, typed_doc
from raysweep.report import findings, summary, tables
from raysweep.report.inputs import read_optional
from raysweep.report.render import to_text
from raysweep.sweep import simulate

FIXTURE = pathlib.Path(__file__).parent / "data" / "fits_1f38f6c"
PARAMS = {4: 4.6e6, 8: 17.6e6}   # heads -> parameters
NO_FLOOR = "3.0 / dp**0.3 + 6.0 / params**0.3 + 0.5 / df**0.3"   # E left out by the study
OFFERED = {"error": {"dp_x_df": "E + A * df**-kappa / dp**alpha + B / params**beta"
                                " + C / df**gamma",
                     "bad_log": "E + A / dp**alpha + log(params - 1e12)"}}


def rows(truth: str, dfs=(1000,)) -> list[dict]:
    """Finetune and distill rows of TRUTH on a 2-size x 5-Dp grid, 2 seeds, 1 % noise; with one
    Df the df term is left out (single value)."""
    rng, out = np.random.default_rng(0), []
    for heads, dp, df, seed in itertools.product(PARAMS, np.geomspace(1e3, 1e6, 5), dfs, (0, 1)):
        x = {"dp": dp, "params": PARAMS[heads], "df": df}
        for stage in ("finetune", "distill"):
            y = simulate.law_value(truth, x) * math.exp(0.01 * rng.standard_normal())
            out.append({"downstream": "digits", "heads": heads, "params": int(PARAMS[heads]),
                        "dp": int(dp), "df": int(df), "seed": seed, "status": "ok",
                        "stage": stage, "teacher_heads": [2] if stage == "distill" else [],
                        "teacher_params": 1.3e6 if stage == "distill" else None,
                        "error": y, "loss": 2 * y})
    return out


@pytest.fixture(scope="module")
def real_entries() -> list[dict]:
    """Every law entry and candidate of two real studies, as fits.json holds them."""
    found = []
    for truth, dfs in ((NO_FLOOR, (1000,)), (NO_FLOOR.replace("3.0", "0.1 + 3.0"), (100, 10000))):
        doc, _ = study.fit_results(rows(truth, dfs), bootstrap=10, offered=OFFERED)
        text = json.dumps(study.finite(json_doc(doc)), indent=1)
        for law in json.loads(text)["downstream"]["digits"].values():
            found += [law, *law["forms"].values()]
    return found


def test_real_entries_survive_a_round_trip_key_for_key(real_entries):
    for entry in real_entries:
        again = LawEntry.from_json(entry).to_json()
        assert json.dumps(again) == json.dumps(entry)   # the same keys in the same order
    # the studies reach every branch of an entry: the test is not vacuous
    keys = set().union(*real_entries)
    assert {"E_left_out", "ci", "selected", "forms", "terms", "warnings"} <= keys
    assert any(e["inputs_dropped"] for e in real_entries)
    assert any(e["status"] != "ok" for e in real_entries)


def test_a_fits_json_of_the_dict_version_writes_back_byte_for_byte():
    text = (FIXTURE / "fits.json").read_text()
    doc = typed_doc(json.loads(text))
    laws = doc["downstream"]["digits"]
    assert all(isinstance(e, LawEntry) for e in laws.values())
    assert laws["error"].selected == "dp_x_df" and laws["error"].forms["bad_log"].status != "ok"
    assert json.dumps(study.finite(json_doc(doc)), indent=1) == text


def test_the_report_says_of_it_what_the_dict_version_said():
    """tests/benchmarks/make_fits_fixture.py wrote report.txt with the dict-built version."""
    notes: list[str] = []
    fits, slices = read_optional(str(FIXTURE), "fits", notes), \
        read_optional(str(FIXTURE), "boundary", notes)
    assert not notes
    said = [summary.tables_text(fits, slices)]
    for f in findings.findings(fits, slices, None, {}):
        said += [f.downstream, *(f"  {s}" for s in f.sentences),
                 *(f"  {label} | {text}" for label, text in f.slices)]
    assert "\n".join(said) + "\n" == (FIXTURE / "report.txt").read_text()


# An entry from before laws were expressions (no expression, params, bic, selected or forms;
# intervals keyed "dp.exponent"); what the dict-built version printed of it, by hand.
BEFORE_FORMS = {"target": "error", "n": 40, "rows_skipped": 0, "inputs_dropped": {},
                "inputs": ["dp", "params"], "E": 0.1,
                "terms": {"dp": {"coef": 3.0, "exponent": 0.3, "lambda": 1 / 3.0}},
                "objective": 0.0012, "ci": {"E": [0.09, 0.11], "dp.exponent": [0.25, 0.35]},
                "extrapolation": {"dp": {"held_out": 8, "mape": 0.02}}, "warnings": [],
                "status": "ok"}


def test_an_entry_from_before_forms_reads_as_the_report_read_it():
    entry = LawEntry.from_json(BEFORE_FORMS)
    assert entry.selected is entry.forms is entry.params is entry.expression is None
    assert entry.ci["dp.exponent"] == (0.25, 0.35)
    assert json.dumps(entry.to_json()) == json.dumps(BEFORE_FORMS)
    fits = {"downstream": {"set": {"error": BEFORE_FORMS}}}
    assert findings.law_sentences(fits, "set") == [
        ("Plain error: the paper's additive form, lack of fit untested (no grid point measured "
         "twice); no power-law terms."), "Distilled error: not fitted (no entry)."]
    extrapolation = to_text(tables.extrapolation_table(fits)).splitlines()[-1]
    assert extrapolation.split() == ["set", "error", "dp", "8", "2", "%", "—"]


MALFORMED = {  # field -> a value of the wrong kind
    "params": [0.1, 0.3],
    "status": 3,
    "n": "40",
    "warnings": ["dp: exponent", 7],
    "ci": {"E": [0.09]},
    "objective": True,
}


@pytest.mark.parametrize("field", sorted(MALFORMED))
def test_a_malformed_field_is_named(field):
    with pytest.raises(InputError, match=rf"\.{field}: expected "):
        LawEntry.from_json(BEFORE_FORMS | {field: MALFORMED[field]})


def test_a_malformed_candidate_is_named_by_its_path_and_the_report_notes_it(tmp_path):
    bad = BEFORE_FORMS | {"selected": "paper", "forms": {"paper": {"bic": "low"}}}
    with pytest.raises(InputError, match=r"downstream\.set\.error\.forms\.paper\.bic: expected a "
                                         r"number, got 'low'"):
        typed_doc({"downstream": {"set": {"error": bad}}})
    (tmp_path / "fits.json").write_text(json.dumps({"downstream": {"set": {"error": bad}}}))
    notes: list[str] = []
    assert read_optional(str(tmp_path), "fits", notes) is None
    (note,) = notes
    assert "fits.json could not be read" in note and "forms.paper.bic" in note


def test_a_missing_optional_field_reads_as_the_readers_default():
    """None is "not there" for every reader, and nothing is written for it."""
    entry = LawEntry.from_json({"status": "too few rows: 3 for 5 parameters"})
    assert not entry.ok and entry.to_json() == {"status": "too few rows: 3 for 5 parameters"}
    fitted = dataclasses.replace(LawEntry.from_json(BEFORE_FORMS), warnings=None)
    assert "warnings" not in fitted.to_json()
