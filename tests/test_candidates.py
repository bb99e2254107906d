"""Candidate forms compared on evidence: a sweep's `laws:` section, fits.json's `selected` and
`forms`, the boundary of the selected forms beside the paper's, `raysweep.fit --law`, and a
simulated truth written in the same language."""

from __future__ import annotations

import itertools
import json
import math
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml

from raysweep import fit
from raysweep.adaptive import choice, information
from raysweep.laws import study
from raysweep.laws.catalogue import BOUNDARY_LAWS, PAPER
from raysweep.report import tables
from raysweep.report.figures import predict
from raysweep.report.render import to_text
from raysweep.sweep import simulate, spec

PARAMS = {2: 1.3e6, 4: 4.6e6, 8: 17.6e6}   # heads -> parameters
# A truth with a Dp x Df interaction: more fine-tuning images shrink what pretraining buys.
PLAIN_TRUTH = "0.10 + 3.0 * df**-0.15 / dp**0.3 + 6.0 / params**0.3 + 0.5 / df**0.3"
DISTILLED_TRUTH = "0.12 + 20.0 * df**-0.15 / dp**0.6 + 6.0 / params**0.3 + 0.5 / df**0.3"
SIMULATE = pathlib.Path(__file__).parent.parent / "sweeps" / "simulate.yaml"
OFFERED = {  # the family of the truth, for both boundary laws
    "error": {"dp_x_df": "E + A * df**-kappa / dp**alpha + B / params**beta + C / df**gamma"},
    "distilled_error": {"dp_x_df": "E + A * df**-kappa / dp**alpha + B / params**beta"
                                   " + C / df**gamma"},
}


def rows_of(plain: str, distilled: str, seeds=(0, 1), noise=0.01) -> list[dict]:
    rng, rows = np.random.default_rng(0), []
    for heads, dp, df, seed in itertools.product((4, 8), np.geomspace(1e3, 1e6, 6),
                                                 (100, 1000, 10000, 100000), seeds):
        x = {"dp": dp, "params": PARAMS[heads], "df": df, "teacher_params": PARAMS[2]}
        base = {"downstream": "digits", "heads": heads, "params": int(PARAMS[heads]),
                "dp": int(dp), "df": int(df), "seed": seed, "status": "ok"}
        for stage, truth, teachers in (("finetune", plain, []), ("distill", distilled, [2])):
            y = simulate.law_value(truth, x) * math.exp(noise * rng.standard_normal())
            rows.append(base | {"stage": stage, "teacher_heads": teachers, "error": y,
                                "loss": 2 * y, "teacher_params": x["teacher_params"]
                                if teachers else None})
    return rows


@pytest.fixture(scope="module")
def compared():
    return study.fit_results(rows_of(PLAIN_TRUTH, DISTILLED_TRUTH), bootstrap=30,
                             offered=OFFERED)


def test_the_true_family_is_selected_and_every_candidate_kept(compared):
    doc, _ = compared
    for name in BOUNDARY_LAWS:
        law = doc["downstream"]["digits"][name]
        assert law.selected == "dp_x_df", (name, law.why_selected)
        assert set(law.forms) == {PAPER, "dp_x_df"}
        assert law.expression == law.forms["dp_x_df"].expression
        assert law.params["kappa"] == pytest.approx(0.15, abs=0.05)
        assert law.forms["dp_x_df"].bic < law.forms[PAPER].bic
        assert set(law.ci) == set(law.params)
    # a law without candidates is the paper's, alone
    assert doc["downstream"]["digits"]["loss"].selected == PAPER
    assert doc["candidates"] == {k: v for k, v in OFFERED.items()}


def test_each_slice_has_its_own_d_star_and_the_papers_beside(compared):
    _, slices = compared
    assert all(s.forms == {"error": "dp_x_df", "distilled_error": "dp_x_df"} for s in slices)
    stars = {s.df: s.d_star for s in slices if s.student_heads == 4}
    assert len(set(stars.values())) == 4   # Df moves D*p through the interaction
    # the truth's own D*p at each Df: zero of dF/dDp, numerically on a fine grid
    for df, star in stars.items():
        dp = np.geomspace(10, 1e7, 200001)
        x = {"dp": dp, "params": PARAMS[4], "df": df, "teacher_params": PARAMS[2]}
        f = np.array([simulate.law_value(PLAIN_TRUTH, {**x, "dp": d}) for d in dp[::1000]]) - \
            np.array([simulate.law_value(DISTILLED_TRUTH, {**x, "dp": d}) for d in dp[::1000]])
        true_star = dp[::1000][int(np.argmax(f))]
        assert star == pytest.approx(true_star, rel=0.5), df
    assert all(s.paper is not None and "d_cross" in s.to_json()["paper"] for s in slices)
    assert all("model_free_cross" in s.to_json() for s in slices)
    assert any(s.model_free_cross is not None for s in slices)


def test_the_terminal_and_report_show_the_candidates_side_by_side(compared):
    doc, slices = compared
    text = to_text(tables.candidates_table(doc))
    assert "dp_x_df" in text and "paper" in text and "BIC" in text
    exponents = to_text(tables.exponents_table(doc))
    assert "kappa" in exponents and "alpha (Dp)" in exponents
    boundary = to_text(tables.boundary_table(slices))
    assert "paper forms' D*p; D**p" in boundary
    law = doc["downstream"]["digits"]["error"]
    x = {"dp": 1e4, "params": 4.6e6, "df": 1000}
    assert float(predict(law, x)) == pytest.approx(simulate.law_value(PLAIN_TRUTH, x), rel=0.05)


def test_adding_a_form_is_one_declaration():
    """A form no code knows about, declared once, is fitted, checked, compared, tabulated and
    drawn: no other file names it."""
    offered = {"error": {"saturating": "E + A / (1 + dp / K)**alpha + B / params**beta"}}
    doc, _ = study.fit_results(rows_of(PLAIN_TRUTH, DISTILLED_TRUTH, seeds=(0,)), bootstrap=0,
                               offered=offered)
    entry = doc["downstream"]["digits"]["error"].forms["saturating"]
    assert entry.status == "ok", entry.status
    assert set(entry.params) == {"E", "A", "K", "alpha", "B", "beta"}
    assert {"lack_of_fit", "extrapolation", "bic"} <= set(entry.to_json())
    assert "saturating" in to_text(tables.candidates_table(doc))


def test_a_sweep_offers_candidates_and_refuses_bad_ones(tmp_path):
    raw = yaml.safe_load(SIMULATE.read_text())
    raw["laws"] = OFFERED
    assert spec.parse(raw).laws == OFFERED
    bad = {
        "unknown law": ({"errr": {"a": "E + A / dp**a"}}, "laws.errr: unknown law"),
        "bad function": ({"error": {"f": "E + foo(dp)"}},
                         "laws.error.f: law 'E + foo(dp)': column 5: unknown function 'foo'"),
        "paper renamed": ({"error": {"paper": "E + A / dp**a"}}, "laws.error.paper"),
        "not a string": ({"error": {"f": 3}}, "expected an expression string"),
    }
    for case, (laws, message) in bad.items():
        with pytest.raises(spec.SweepError, match=None) as err:
            spec.parse(raw | {"laws": laws})
        assert message in str(err.value), case


def test_a_simulated_truth_may_be_an_expression():
    raw = yaml.safe_load(SIMULATE.read_text())
    raw["simulate"] |= {"plain": PLAIN_TRUTH, "distilled": DISTILLED_TRUTH}
    spec.parse(raw)
    # the pretraining answer: the plain truth without its Df summands
    assert simulate.law_value(PLAIN_TRUTH, {"dp": 1e4, "params": 1e6, "df": None}) == \
        pytest.approx(0.10 + 6.0 / 1e6 ** 0.3)
    for truth, message in (("0.1 + A / dp**0.3", "'A' is not an input"),
                           ("0.1 + 2 / dp**", "not an expression")):
        with pytest.raises(spec.SweepError, match="simulate.plain") as err:
            spec.parse(raw | {"simulate": raw["simulate"] | {"plain": truth}})
        assert message in str(err.value)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(3)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 300))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 300))
    L = (1.7 + 400 * N ** -0.34 + 2000 * D ** -0.37) * np.exp(0.005 * rng.standard_normal(300))
    path = tmp_path_factory.mktemp("t") / "t.csv"
    pacsv.write_csv(pa.table({"N": N, "D": D, "L": L, "name": ["x"] * 300}), path)
    return str(path)


def test_fit_one_law_from_the_command_line(table, capsys):
    argv = ["--table", table, "--target", "L", "--law", "E + A / N**a + B / D**b",
            "--bootstrap", "10", "--json"]
    assert fit.main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["params"]["a"] == pytest.approx(0.34, abs=0.03)
    assert obj["objective"] > 0 and set(obj["ci"]) == {"E", "A", "B", "a", "b"}
    assert {"lack_of_fit", "extrapolation", "bic"} <= set(obj)


def test_fit_several_laws_selects_one(table, capsys):
    argv = ["--table", table, "--target", "L", "--law", "additive=E + A / N**a + B / D**b",
            "--law", "kaplan=((Nc / N)**(aN / aD) + Dc / D)**aD",
            "--init", "Nc=1e10:1e15", "--init", "Dc=1e10:1e15", "--json"]
    assert fit.main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    assert set(obj["forms"]) == {"additive", "kaplan"} and obj["selected"] == "additive"
    assert all("params" in f and "objective" in f for f in obj["forms"].values())
    assert fit.main(argv[:-5]) == 0   # without --init too; and as text
    assert fit.main(argv[:-1]) == 0
    assert "kaplan" in capsys.readouterr().out


BAD = {  # case -> (extra argv, what stderr must say)
    "unknown function": (["--law", "E + A * foo(N)"], "column 9: unknown function 'foo'"),
    "input the table lacks": (["--law", "E + A / Q**a + B / D**b"],
                              "raises a parameter (Q) to a fitted power"),
    "init of no parameter": (["--law", "E + A / N**a", "--init", "zeta=0:1"],
                             "--init zeta: a parameter of no --law"),
    "log of a negative": (["--law", "E + A * log(N - 1e12)"],
                          "'log(N - 1e12)' is undefined at row 0"),
    "bad init": (["--law", "E + A / N**a", "--init", "a=1"], "expected NAME=LO:HI"),
    "not numeric": (["--law", "E + A / name**a"], "'name' is not numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_laws_exit_2_naming_what_was_expected(table, case, capsys):
    extra, message = BAD[case]
    assert fit.main(["--table", table, "--target", "L", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err, err


def test_the_adaptive_rounds_fit_the_selected_forms():
    """The sampler's fits (and so its Jacobians and D**p gradients) are the selected forms'."""
    rows = rows_of(PLAIN_TRUTH, DISTILLED_TRUTH, seeds=(0,))
    forms = choice.selected_forms(OFFERED, rows)
    assert {k: f.expression for k, f in forms.items()} == {
        k: v["dp_x_df"] for k, v in OFFERED.items()}
    fits, slices = choice.fit_boundary(rows, bootstrap=0, forms=forms)
    plain = fits["digits"]["error"]
    assert "kappa" in plain.law.values
    J = information.log_jacobian(plain, [r for r in rows if r["stage"] == "finetune"][:5])
    assert J.shape == (5, len(plain.form.params))
    crossing = next(s for s in slices if s.d_cross is not None)
    grads = information.cross_gradient(fits["digits"], crossing.fixed_inputs(),
                                       crossing.dp_range)
    assert grads is not None and len(grads[0]) == len(plain.form.params)
