"""The law language (raysweep.laws.form): what it parses and refuses, the structure it recognises,
its derivatives, and that the fitter's two paths agree."""

from __future__ import annotations

import numpy as np
import pytest

from raysweep.errors import InputError
from raysweep.laws import fitting, models
from raysweep.laws.catalogue import INPUTS, LAWS, paper_form
from raysweep.laws.form import COEF, EXPONENT, FLOOR, FREE, parse

DP_X_DF = "E + A * df**kappa / dp**alpha + B / params**beta + C / df**gamma"
KAPLAN = "((Nc / N)**(aN / aD) + Dc / D)**aD"

REFUSED = {  # expression -> (column, what the message names)
    "E + foo(dp)": (5, "unknown function 'foo'"),
    "E + A * dp[0]": (9, "Subscript"),
    "E + A / dp**alpha if dp else 1": (1, "IfExp"),
    "__import__('os').system('x') + dp": (1, "unknown function"),
    "E + A * dp ** 'a'": (15, "'a' is not a number"),
    "E + A * exp": (9, "exp is a function"),
    "E + minimum(dp)": (5, "minimum takes 2 argument(s)"),
    "E + c ** b * dp": (5, "raises a parameter (c) to a fitted power"),
    "E + A / dp**": (13, "not an expression"),
    "E + A % dp": (5, "operator Mod is not allowed"),
    "E + A": (None, "uses no input"),
}


@pytest.mark.parametrize("expression", sorted(REFUSED))
def test_refused_expressions_name_the_column_and_what_was_expected(expression):
    column, what = REFUSED[expression]
    with pytest.raises(InputError) as err:
        parse(expression, INPUTS)
    message = str(err.value)
    assert repr(expression) in message and what in message
    if column is not None:
        assert f"column {column}:" in message


@pytest.mark.parametrize("name", sorted(LAWS))
def test_the_catalogue_declares_the_papers_forms(name):
    form = paper_form(name)
    assert form.power_sum is not None and form.floor == "E"
    assert set(form.inputs) == set(LAWS[name].inputs)
    # the fitter's layout: E, one coefficient per input, one exponent per input
    k = len(form.inputs)
    assert [form.roles[p] for p in form.params] == [FLOOR] + [COEF] * k + [EXPONENT] * k


def test_power_sums_with_interactions_and_shared_exponents_are_recognised():
    inter = parse(DP_X_DF, INPUTS)
    assert inter.power_sum is not None
    first = inter.power_sum.terms[0]
    assert first.coef == "A"
    assert {(p.exponent, p.inputs) for p in first.powers} == {
        ("kappa", (("df", 1),)), ("alpha", (("dp", -1),))}
    shared = parse("E + A * (dp * df)**-a + B / params**a", INPUTS)
    assert shared.power_sum is not None and shared.params == ("E", "A", "B", "a")
    assert parse(KAPLAN, ["N", "D"]).power_sum is None
    assert parse("E + A * log(dp)", INPUTS).power_sum is None
    assert parse("E - A / dp**a", INPUTS).power_sum is None   # a negative term: the tree path


def test_roles_decide_how_a_parameter_moves():
    kaplan = parse(KAPLAN, ["N", "D"])
    assert kaplan.roles == {"Nc": COEF, "Dc": COEF, "aN": EXPONENT, "aD": EXPONENT}
    inside = parse("E + exp(c - a * log(dp))", INPUTS)
    assert inside.roles == {"E": FLOOR, "c": FREE, "a": FREE}


def numeric_log_jacobian(form, X, values, h=1e-6):
    theta = form.to_theta(values)
    base = np.log(form.predict(X, values))
    cols = []
    for j in range(len(theta)):
        step = theta.copy()
        step[j] += h
        cols.append((np.log(form.predict(X, form.to_values(step))) - base) / h)
    return np.column_stack(cols)


ROWS = {"dp": np.geomspace(1e2, 1e6, 7), "df": np.geomspace(10, 1e4, 7)[::-1],
        "params": np.geomspace(1e5, 1e8, 7), "N": np.geomspace(1e8, 1e10, 7),
        "D": np.geomspace(1e9, 1e11, 7)[::-1]}
VALUES = {
    DP_X_DF: {"E": 0.05, "A": 4.0, "kappa": 0.1, "alpha": 0.4, "B": 30.0, "beta": 0.3,
              "C": 2.0, "gamma": 0.4},
    KAPLAN: {"Nc": 8.8e13, "Dc": 5.4e13, "aN": 0.076, "aD": 0.095},
    "E + exp(c - a * log(dp)) + sqrt(df) / maximum(params, 1e6)**b":
        {"E": 0.1, "c": 1.0, "a": 0.3, "b": 0.5},
}


@pytest.mark.parametrize("expression", sorted(VALUES))
def test_the_log_jacobian_is_the_derivative(expression):
    form = parse(expression, ["dp", "df", "params", "N", "D"])
    X = {k: ROWS[k] for k in form.inputs}
    got = form.log_jacobian(X, VALUES[expression])
    assert got == pytest.approx(numeric_log_jacobian(form, X, VALUES[expression]), rel=1e-4,
                                abs=1e-7)


def test_both_models_give_the_same_values_and_jacobian_on_a_power_sum():
    form = parse(DP_X_DF, INPUTS)
    X = {k: ROWS[k] for k in form.inputs}
    theta = np.stack([form.to_theta(VALUES[DP_X_DF]), form.to_theta(VALUES[DP_X_DF]) + 0.01])
    fast, tree = models.PowerSumModel(form, X), models.TreeModel(form, X)
    (a, w), (b, _) = fast.value(theta), tree.value(theta)
    assert a == pytest.approx(b, rel=1e-12)
    assert fast.jacobian(theta, w) == pytest.approx(tree.jacobian(theta), rel=1e-9, abs=1e-12)


def test_the_tree_path_finds_the_fast_paths_optimum():
    """The paper's form written with exp and log is not a sum of power terms to the parser: the
    generic path fits it, with the same objective, and lands on the same optimum."""
    rng = np.random.default_rng(0)
    X = {"dp": np.exp(rng.uniform(np.log(1e3), np.log(1e7), 120)),
         "params": np.exp(rng.uniform(np.log(1e6), np.log(1e8), 120))}
    y = (0.05 + 3 * X["dp"] ** -0.3 + 6 * X["params"] ** -0.3) * np.exp(
        0.01 * rng.standard_normal(120))
    fast = fitting.fit_law(X, y)
    tree = fitting.fit_form(parse("E + exp(c - a * log(dp)) + exp(d - b * log(params))",
                                  INPUTS), X, y)
    assert tree.objective == pytest.approx(fast.objective, rel=1e-6)
    assert tree.law.values["a"] == pytest.approx(fast.law.values["alpha"], abs=1e-4)


def test_init_ranges_and_their_errors():
    form = parse(DP_X_DF, INPUTS)
    from raysweep.laws import starts
    points = starts.starts(form, init={"kappa": (-0.5, 0.5)})
    k = form.params.index("kappa")
    assert points[:, k].min() >= -0.5 and points[:, k].max() <= 0.5
    with pytest.raises(InputError, match="not a parameter of"):
        starts.starts(form, init={"zeta": (0, 1)})
    with pytest.raises(InputError, match="positive scale"):
        starts.starts(form, init={"A": (-1, 1)})


def test_a_form_undefined_at_the_data_says_where():
    X = {"dp": np.array([10.0, 100.0, -5.0, 1000.0, 50.0, 20.0])}
    y = np.array([0.5, 0.4, 0.45, 0.3, 0.42, 0.47])
    with pytest.raises(InputError) as err:
        fitting.fit_form(parse("E + A * log(dp)**-a", INPUTS), X, y)
    message = str(err.value)
    assert "cannot be evaluated at the data" in message
    assert "column 9: 'log(dp)' is undefined at row 2 (dp = -5)" in message
