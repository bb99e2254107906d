"""A fitted law: a Form and its parameters' values, and the fit that found them.

`Law` predicts, names its parameters and writes its part of a fits.json entry (`to_dict`: the
expression and its parameters' values; laws/entries.py's `LawEntry.law()` reads it back, so the
report evaluates exactly the fitted expression). For a sum of one power term per input -- the
paper's laws -- it also offers the paper's reading, E and {input: (coef, exponent)}, which the
tables print as the paper's Tables 1 and 2 do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from raysweep.laws.catalogue import SYMBOLS
from raysweep.laws.form import Form, parse


@dataclasses.dataclass(frozen=True)
class Law:
    form: Form
    values: Mapping[str, float]   # parameter -> value, in the units the expression gives it

    def predict(self, X: Mapping[str, np.ndarray | float]) -> np.ndarray:
        return self.form.predict(X, self.values)

    @property
    def E(self) -> float:
        """The floor of a sum of power terms (0 where it has none)."""
        floor = self.form.floor
        return float(self.values[floor]) if floor else 0.0

    @property
    def terms(self) -> dict[str, tuple[float, float]]:
        """input -> (coef, exponent) of y = E + sum coef x^-exponent, where the form is such a
        sum with one power of one input per term; {} otherwise."""
        ps = self.form.power_sum
        if ps is None or not all(len(t.powers) == 1 and len(t.powers[0].inputs) == 1
                                 and isinstance(t.powers[0].exponent, str) for t in ps.terms):
            return {}
        out = {}
        for t in ps.terms:
            (name, sign), = t.powers[0].inputs
            out[name] = (float(self.values[t.coef]), -sign * float(self.values[t.powers[0].exponent]))
        return out

    def to_dict(self) -> dict:
        out = {"expression": self.form.expression, "params": dict(self.values)}
        if self.form.power_sum:
            out["E"] = self.E
        if self.terms:
            # coef underflows to 0 when its log runs to -inf (a term the data do not support)
            out["terms"] = {k: {"coef": c, "exponent": x, "lambda": 1.0 / c if c else math.inf}
                            for k, (c, x) in self.terms.items()}
        return out


@dataclasses.dataclass(frozen=True)
class Fit:
    law: Law
    objective: float                 # summed Huber loss at the optimum
    n: int                           # rows used
    inputs: tuple[str, ...]
    ci: dict[str, tuple[float, float]] | None  # parameter -> 95 % percentile interval
    ensemble: list[Law] | None       # bootstrap laws, in replicate order
    jackknife: list[Law] | None = None   # delete-a-group refits (laws/fitting.py
                                         # jackknife_groups): the boundary's BCa acceleration

    @property
    def form(self) -> Form:
        return self.law.form


def symbols(name: str) -> tuple[str, str]:
    """(coefficient, exponent) names of an input's term: the paper's for its inputs, else
    c_NAME and a_NAME."""
    s = SYMBOLS.get(name)
    return (s.coef, s.exponent) if s else (f"c_{name}", f"a_{name}")


def additive_form(inputs: Sequence[str], floor: bool = True) -> Form:
    """E + sum_k c_k / x_k ** a_k over INPUTS: the paper's form (eq. 1, 2, 4) on any columns."""
    terms = [f"{symbols(k)[0]} / {k}**{symbols(k)[1]}" for k in inputs]
    return parse(" + ".join((["E"] if floor else []) + terms), inputs)


def additive(E: float, terms: Mapping[str, tuple[float, float]]) -> Law:
    """The law E + sum_k coef_k x_k^-exponent_k (no floor where E is 0)."""
    form = additive_form(list(terms), floor=E != 0)
    values = {"E": E} if E != 0 else {}
    for k, (coef, exponent) in terms.items():
        c, a = symbols(k)
        values |= {c: coef, a: exponent}
    return Law(form, values)
