"""The paper's laws and their symbols: the one table that the fitter, the boundary, the adaptive
sampler, the figures and the tables read.

Every law is y = E + sum_k coef_k * x_k^-exponent_k over the inputs it names (the paper writes
coef_k as 1/lambda_k). The distilled laws take the MEAN parameter count of the teachers as their
extra input: averaged teacher distributions act like one teacher of intermediate capacity, and a
mean keeps eq. 4's single teacher term.
"""

from __future__ import annotations

from typing import NamedTuple


class LawSpec(NamedTuple):
    stage: str                # stage of the result rows it is fitted on
    target: str               # column of the results it predicts
    inputs: tuple[str, ...]   # columns it is a power law in
    equation: str             # where the paper states it


PLAIN_INPUTS = ("dp", "params", "df")
LAWS = {  # name in fits.json -> its spec; the order is the order of every table and figure
    "error": LawSpec("finetune", "error", PLAIN_INPUTS, "eq. 1"),
    "loss": LawSpec("finetune", "loss", PLAIN_INPUTS, "eq. 2"),
    "distilled_error": LawSpec("distill", "error", PLAIN_INPUTS + ("teacher_params",), "eq. 4"),
    "distilled_loss": LawSpec("distill", "loss", PLAIN_INPUTS + ("teacher_params",),
                              "eq. 4, cross-entropy"),
}
BOUNDARY_LAWS = ("error", "distilled_error")  # F(Dp) = E_plain - E_distilled (sec. 4)


class Symbol(NamedTuple):
    exponent: str   # the paper's name of the input's exponent
    scale: str      # the paper's name of its lambda (= 1 / coef)
    measures: str   # what the input counts


SYMBOLS = {  # input -> the paper's names (eq. 1 and 4)
    "dp": Symbol("alpha", "lambda_p", "Dp"),
    "params": Symbol("beta", "lambda_m", "M"),
    "df": Symbol("gamma", "lambda_f", "Df"),
    "teacher_params": Symbol("eta", "delta", "teacher M"),
}
