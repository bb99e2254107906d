"""`python -m raysweep.fit`: one law on any CSV / Parquet table, and a grid's results under OUT
(fits.json, boundary.json, the printed tables). Grid results are Parquet files written with the
results module's own schema; their errors come from known laws via the simulator's law_value."""

import itertools
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from test_laws import REF_FIT, chinchilla

from raysweep import fit
from raysweep.laws import study
from raysweep.laws.catalogue import LAWS, SYMBOLS
from raysweep.laws.law import Fit, additive, additive_form
from raysweep.report.summary import summarize
from raysweep.store import results
from raysweep.sweep.simulate import law_value

PARAMS = {2: 1.3e6, 4: 4.6e6, 6: 9.9e6, 8: 17.6e6}  # heads -> parameters (DeiT, head dim 64)
PLAIN = {"E": 0.10, "terms": {"dp": {"coef": 3.0, "exponent": 0.3},
                              "params": {"coef": 6.0, "exponent": 0.3},
                              "df": {"coef": 0.5, "exponent": 0.3}}}
DISTILLED = {"E": 0.12, "terms": PLAIN["terms"] | {"dp": {"coef": 20.0, "exponent": 0.6},
                                                   "teacher_params": {"coef": 1.0,
                                                                      "exponent": 0.2}}}
TEACHERS = {4: [[2]], 6: [[2], [4]], 8: [[2], [4]]}  # student heads -> teacher sets


def grid_rows(dps, dfs, seeds=(0, 1), noise=0.01, teachers=None) -> list[dict]:
    """Plain and distilled rows for every student x Dp x Df x seed (x teacher set)."""
    rng, rows = np.random.default_rng(0), []
    sets_by_student = teachers or TEACHERS
    for heads, dp, df, seed in itertools.product(sets_by_student, dps, dfs, seeds):
        x = {"dp": dp, "params": PARAMS[heads], "df": df}
        base = {"downstream": "digits", "upstream": "fractal", "heads": heads,
                "params": int(PARAMS[heads]), "dp": int(dp), "df": int(df), "seed": seed,
                "status": "ok"}
        plain = law_value(PLAIN, x) * math.exp(noise * rng.standard_normal())
        rows.append(base | {"stage": "finetune", "teacher_heads": [], "error": plain,
                            "loss": 2 * plain})
        for tset in sets_by_student[heads]:
            tp = float(np.mean([PARAMS[t] for t in tset]))  # mean teacher parameters
            err = (law_value(DISTILLED, x | {"teacher_params": tp})
                   * math.exp(noise * rng.standard_normal()))
            rows.append(base | {"stage": "distill", "teacher_heads": tset, "teacher_params": tp,
                                "error": err, "loss": 2 * err})
    return rows


def write_grid(out, rows) -> str:
    for i, row in enumerate(rows):
        table = pa.Table.from_pylist([row | {"trial_id": f"t{i:05d}"}], schema=results.SCHEMA)
        (out / "results").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / "results" / f"t{i:05d}.parquet")
    return str(out)


@pytest.fixture(scope="module")
def grid_out(tmp_path_factory):
    out = write_grid(tmp_path_factory.mktemp("grid"), grid_rows(np.geomspace(1e3, 1e6, 5),
                                                                 [300, 1000, 3000]))
    return out, summarize(out, bootstrap=10, verbose=True)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_grid_fits_every_law(grid_out, name):
    out, _ = grid_out
    doc = json.loads(pathlib.Path(out, "fits.json").read_text())
    law = doc["downstream"]["digits"][name]
    target, inputs = LAWS[name].target, LAWS[name].inputs
    assert law["status"] == "ok" and law["target"] == target
    assert set(law["terms"]) == set(inputs) and not law["inputs_dropped"]
    floor = set() if "E_left_out" in law else {"E"}   # an E left out has no interval
    assert set(law["ci"]) == floor | {p for k in inputs for p in (SYMBOLS[k].coef,
                                                                   SYMBOLS[k].exponent)}
    assert law["selected"] == "paper" and set(law["forms"]) == {"paper"}
    assert ("E_left_out" in law) == (law["E"] == 0.0)
    assert set(law["extrapolation"]) == set(inputs)
    assert isinstance(law["warnings"], list)
    assert doc["bootstrap"] == 10
    if name in ("error", "distilled_error"):  # the laws the rows were drawn from (1 % noise)
        # Dp spans 3 decades and Df 1; sizes span only 0.6 decades (3 students), too little to
        # pin their exponents down, so those are not checked.
        truth = (PLAIN if name == "error" else DISTILLED)["terms"]
        for k, tol in (("dp", 0.05), ("df", 0.1)):
            assert law["terms"][k]["exponent"] == pytest.approx(truth[k]["exponent"], abs=tol), k


def test_grid_boundary_json_and_tables(grid_out):
    out, text = grid_out
    slices = json.loads(pathlib.Path(out, "boundary.json").read_text())
    assert {(s["student_heads"], tuple(s["teacher_heads"])) for s in slices} == {
        (h, tuple(t)) for h, sets in TEACHERS.items() for t in sets}
    assert len(slices) == 5 * 3  # (student, teacher set) pairs x 3 Df
    needed = {"downstream", "student_heads", "teacher_heads", "df", "d_star", "d_star_ci",
              "d_cross", "d_cross_ci", "model_free_cross", "model_free_cross_ci", "status"}
    assert all(needed <= set(s) for s in slices)
    assert sum(s["status"] == "ok" for s in slices) >= 10  # the laws cross inside 1k-1M images
    for title in ("Tables 1, 2", "Table 4", "Extrapolation", "Distillation boundary"):
        assert title in text
    assert "digits: where plain training overtakes distilling from smaller teachers" in text


def test_without_verbose_the_summary_fits_a_screen_and_leaves_the_tables_out(grid_out):
    out, _ = grid_out
    text = summarize(out, bootstrap=10)
    lines = text.splitlines()
    assert "Tables 1, 2" not in text and "Table 4" not in text
    assert lines[0] == "digits: where plain training overtakes distilling from smaller teachers"
    assert len(lines) <= 32 and max(map(len, lines[:-1])) <= 100   # then a blank, "wrote ..."
    assert lines[-1] == f"wrote {out}/fits.json and {out}/boundary.json"
    assert "  4h <- 2h  " in text and "Dp in 15 of 15" in text   # the known laws cross in each


def test_single_valued_input_is_dropped_and_said(tmp_path):
    out = write_grid(tmp_path, grid_rows(np.geomspace(1e3, 1e6, 5), [1000], seeds=(0,)))
    doc, slices = study.fit_results(results.read(out), bootstrap=0)
    law = doc["downstream"]["digits"]["error"]
    assert law.status == "ok" and law.inputs_dropped == {"df": "single value 1000"}
    assert set(law.terms) == {"dp", "params"}
    assert all(s.df == 1000 for s in slices)


def test_teacher_size_tied_to_student_size_is_dropped():
    """The paper's design (each student distilled from the sizes below it) gives one teacher set
    per student: the teacher term cannot be told apart from the size term."""
    nested = {4: [[2]], 6: [[2, 4]], 8: [[2, 4, 6]]}
    rows = grid_rows(np.geomspace(1e3, 1e6, 4), [300, 3000], seeds=(0,), teachers=nested)
    doc, _ = study.fit_results(rows, bootstrap=0)
    law = doc["downstream"]["digits"]["distilled_error"]
    assert law.inputs_dropped == {
        "teacher_params": "confounded with params: one value of teacher_params per value of params"}
    assert law.status == "ok" and set(law.terms) == {"dp", "params", "df"}


def test_degenerate_terms_are_flagged():
    law = additive(0.1, {"dp": (1.0, 0.3), "params": (1e40, 7.5)})
    got = study._warnings(Fit(law, 0.0, 10, ("dp", "params"), None, None))
    assert len(got) == 1 and got[0].startswith("params: exponent 7.5")


def test_points_measured_under_two_settings_are_said():
    """An OUT reused after a sweep's settings changed holds two trials of one point (different
    ids): the law that fits them says so; replicates (other seeds) are not flagged."""
    rows = [r | {"trial_id": f"t{i}"} for i, r in
            enumerate(grid_rows(np.geomspace(1e3, 1e6, 4), [300, 3000]))]
    doc, _ = study.fit_results(rows, bootstrap=0)
    assert not any(law.warnings for law in doc["downstream"]["digits"].values())
    again = next(r for r in rows if r["stage"] == "distill" and r["heads"] == 6)
    rows.append(again | {"trial_id": "retuned", "error": again["error"] * 1.1})
    laws = study.fit_results(rows, bootstrap=0)[0]["downstream"]["digits"]
    (said,) = laws["distilled_error"].warnings
    assert said.startswith("rows: 1 point measured by several trials") and "6 heads" in said
    assert f"seed {again['seed']}" in said and "2 trials" in said
    assert not laws["error"].warnings


def test_a_floor_the_rows_do_not_show_is_left_out_and_said():
    """E is fitted where the rows show a floor (E = 0.1 under terms falling over 5 decades of Dp
    and 2 of Df: its interval keeps away from 0) and left out, with the reason, where they do
    not (the same law with E = 0)."""
    rng = np.random.default_rng(0)
    for E in (0.1, 0.0):
        law = {"E": E, "terms": {"dp": {"coef": 3.0, "exponent": 0.3},
                                 "df": {"coef": 0.5, "exponent": 0.3}}}
        rows = [{"dp": dp, "df": df, "error": law_value(law, {"dp": dp, "df": df})
                 * math.exp(0.01 * rng.standard_normal())}
                for dp, df in itertools.product(np.geomspace(1e2, 1e7, 8), [100, 1000, 10000])]
        got, fit = study.fit_rows(rows, "error", additive_form(("dp", "df")), bootstrap=40,
                                  seed=0)
        assert got.status == "ok" and set(got.extrapolation) == {"dp", "df"}
        assert got.terms["dp"]["exponent"] == pytest.approx(0.3, abs=0.02)
        if E:
            assert got.E_left_out is None and got.ci["E"][0] > 0.05
            assert got.E == pytest.approx(E, rel=0.1)
        else:
            assert got.E == 0.0 and fit.law.E == 0.0 and "E" not in got.ci
            assert got.E_left_out.startswith("E's 95 % interval reaches 0")


def test_thin_grid_gets_statuses_not_exceptions(tmp_path):
    rows = grid_rows([1e4], [1000], seeds=(0,))
    rows = [r for r in rows if r["heads"] == 4]  # 1 plain row, 1 distilled row
    doc, slices = study.fit_results(rows, bootstrap=0)
    for name in LAWS:
        assert doc["downstream"]["digits"][name].status == "no input varies"
    assert slices[0].status.startswith("law not fitted")
    empty = summarize(write_grid(tmp_path, []), bootstrap=0)
    assert "nothing to fit" in empty


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    X, y = chinchilla()
    table = pa.table({"N": X["N"], "D": X["D"], "L": y, "name": ["x"] * len(y)})
    folder = tmp_path_factory.mktemp("tables")
    pacsv.write_csv(table, folder / "chinchilla.csv")
    pq.write_table(table, folder / "chinchilla.parquet")
    pacsv.write_csv(pa.table({"N": [1.0, 2.0, None, 4.0], "L": [0.5, 0.4, 0.3, 0.2]}),
                    folder / "empty_cell.csv")
    pacsv.write_csv(pa.table({"N": [1.0, 2.0, 3.0, -4.0], "L": [0.5, 0.4, 0.3, 0.2]}),
                    folder / "negative.csv")
    pacsv.write_csv(pa.table({"N": [1.0, 2.0, 3.0, 4.0], "L": [0.5, 0.4, 0.3, 0.0]}),
                    folder / "zero_target.csv")
    return folder


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_table_json_is_the_issue_object(tables, ext, capsys):
    argv = ["--table", str(tables / f"chinchilla.{ext}"), "--inputs", "N,D", "--target", "L",
            "--json", "--bootstrap", "20"]
    assert fit.main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["target"] == "L" and obj["n"] == 240
    assert obj["E"] == pytest.approx(REF_FIT["E"], abs=2e-3)
    assert obj["terms"]["N"]["exponent"] == pytest.approx(REF_FIT["a_N"], abs=1e-3)
    assert obj["params"]["a_N"] == obj["terms"]["N"]["exponent"]
    assert obj["expression"] == "E + c_N / N**a_N + c_D / D**a_D"
    assert obj["terms"]["D"]["lambda"] == pytest.approx(1 / obj["terms"]["D"]["coef"])
    assert set(obj["ci"]) == {"E", "c_N", "a_N", "c_D", "a_D"}
    assert all(lo <= hi for lo, hi in obj["ci"].values())


def test_table_text_without_bootstrap(tables, capsys):
    argv = ["--table", str(tables / "chinchilla.csv"), "--inputs", "N, D", "--target", "L"]
    assert fit.main(argv) == 0
    text = capsys.readouterr().out
    assert "lambda" in text and "n = 240" in text and "[" not in text.split("\n", 3)[3]


BAD_ARGS = {  # case -> (argv after the table path, what stderr must name)
    "missing column": (["--inputs", "N,Q", "--target", "L"], "no column(s) ['Q']"),
    "text column": (["--inputs", "name", "--target", "L"], "'name' is not numeric"),
    "no target": (["--inputs", "N"], "--target"),
    "negative bootstrap": (["--inputs", "N", "--target", "L", "--bootstrap", "-1"], ">= 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_table_arguments_exit_2(tables, case, capsys):
    rest, message = BAD_ARGS[case]
    assert fit.main(["--table", str(tables / "chinchilla.csv"), *rest]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    if case == "missing column":
        assert "'N', 'D', 'L', 'name'" in err  # the available columns


@pytest.mark.parametrize("argv, message", [
    (["--table", "nowhere.csv", "--inputs", "N", "--target", "L"], "no such file"),
    (["--table", "table.xlsx", "--inputs", "N", "--target", "L"], "unknown table format"),
    (["somewhere", "--table", "t.csv"], "not both"),
    ([], "either OUT"),
])
def test_bad_invocations_exit_2(argv, message, capsys):
    assert fit.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [
    ("empty_cell", "column 'N' has 1 empty value"),
    ("negative", "N has 1 non-positive or non-finite value(s) (first at row 3: -4.0)"),
    ("zero_target", "target has 1 non-positive or non-finite value(s) (first at row 3: 0.0)"),
])
def test_bad_values_exit_2(tables, name, message, capsys):
    argv = ["--table", str(tables / f"{name}.csv"), "--inputs", "N", "--target", "L"]
    assert fit.main(argv) == 2
    assert message in capsys.readouterr().err


def test_module_entry_point_fails_without_traceback(tables):
    cmd = [sys.executable, "-m", "raysweep.fit", "--table", str(tables / "chinchilla.csv"),
           "--inputs", "N,nope", "--target", "L"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no column(s) ['nope']" in proc.stderr and "Traceback" not in proc.stderr
