"""The paper's laws, declared once as expressions: the one table that the fitter, the boundary,
the adaptive sampler, the figures and the tables read.

Every law here is the paper's y = E + sum_k coef_k * x_k^-exponent_k over the inputs it names
(the paper writes coef_k as 1/lambda_k). The distilled laws take the MEAN parameter count of the
teachers as their extra input: averaged teacher distributions act like one teacher of intermediate
capacity, and a mean keeps eq. 4's single teacher term.

Adding a form is one declaration: a sweep's `laws:` section (or `python -m raysweep.fit --law`)
offers candidates in the same language beside these, which are always fitted under the name
`paper` (laws/candidates.py compares them).
"""

from __future__ import annotations

from typing import NamedTuple

from raysweep.laws.form import Form, parse

PAPER = "paper"   # the name the catalogue's form is fitted under, beside a sweep's candidates
INPUTS = ("dp", "params", "df", "teacher_params")   # columns a law of the results may use

# eq. 1 (and eq. 2, the same form on cross-entropy) and eq. 4 with the teachers' term.
PLAIN_FORM = "E + A / dp**alpha + B / params**beta + C / df**gamma"
DISTILLED_FORM = PLAIN_FORM + " + D / teacher_params**eta"


class LawSpec(NamedTuple):
    stage: str                # stage of the result rows it is fitted on
    target: str               # column of the results it predicts
    inputs: tuple[str, ...]   # columns its paper form uses
    equation: str             # where the paper states it
    expression: str           # its paper form


PLAIN_INPUTS = ("dp", "params", "df")
LAWS = {  # name in fits.json -> its spec; the order is the order of every table and figure
    "error": LawSpec("finetune", "error", PLAIN_INPUTS, "eq. 1", PLAIN_FORM),
    "loss": LawSpec("finetune", "loss", PLAIN_INPUTS, "eq. 2", PLAIN_FORM),
    "distilled_error": LawSpec("distill", "error", PLAIN_INPUTS + ("teacher_params",), "eq. 4",
                               DISTILLED_FORM),
    "distilled_loss": LawSpec("distill", "loss", PLAIN_INPUTS + ("teacher_params",),
                              "eq. 4, cross-entropy", DISTILLED_FORM),
}
BOUNDARY_LAWS = ("error", "distilled_error")  # F(Dp) = E_plain - E_distilled (sec. 4)


def paper_form(name: str) -> Form:
    """The catalogue's form of law NAME; an unknown name fails with the known ones."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; expected one of {list(LAWS)}")
    return parse(LAWS[name].expression, INPUTS)


class Symbol(NamedTuple):
    exponent: str   # the paper's name of the input's exponent (and the form's parameter)
    coef: str       # the form's name of its coefficient
    scale: str      # the paper's name of its lambda (= 1 / coef)
    measures: str   # what the input counts


SYMBOLS = {  # input -> the paper's names (eq. 1 and 4)
    "dp": Symbol("alpha", "A", "lambda_p", "Dp"),
    "params": Symbol("beta", "B", "lambda_m", "M"),
    "df": Symbol("gamma", "C", "lambda_f", "Df"),
    "teacher_params": Symbol("eta", "D", "delta", "teacher M"),
}
