"""A law declared once, as an expression in its inputs and free parameters.

    E + A / dp**alpha + B / params**beta + C / df**gamma
    E + A * df**kappa / dp**alpha + B / params**beta + C / df**gamma

`parse` reads the text with Python's `ast` into an allow-listed tree (numbers, names, + - * / **,
unary -, and calls of exp, log, sqrt, minimum, maximum); anything else is an InputError naming the
expression, the column and what was expected. Nothing is ever `eval`ed. A name is an input when the
caller lists it as one (a results column, a table's column), else a free parameter.

A `Form` owns what every consumer needs: its parameter names and their roles, the prediction and
its derivatives (forward mode over the tree, `evaluate`), the coordinates the fitter moves in (a
parameter that only scales -- a floor, a coefficient -- is fitted as its logarithm, as Hoffmann et
al. 2022 do; an exponent as itself) and, when the expression is a sum of power terms (a constant
plus terms coef * prod x_i^(+-exponent)), that structure (`PowerSum`), which the fitter runs on its
fast batched path (laws/models.py).
"""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Iterable, Mapping

import numpy as np

from raysweep.errors import InputError
from raysweep.laws.derivatives import tree_value

FUNCTIONS = {"exp": 1, "log": 1, "sqrt": 1, "minimum": 2, "maximum": 2}   # name -> arguments
EXPECTED = ("numbers, names, + - * / **, unary -, and calls of "
            + ", ".join(FUNCTIONS))
FLOOR, COEF, EXPONENT, FREE = "floor", "coef", "exponent", "free"   # a parameter's role


@dataclasses.dataclass(frozen=True)
class Power:
    """exp(exponent * sum_i sign_i log x_i): `dp**-alpha` is (alpha, (("dp", -1),))."""
    exponent: str | float                  # a parameter's name or a fixed number
    inputs: tuple[tuple[str, int], ...]    # (input, sign)


@dataclasses.dataclass(frozen=True)
class Term:
    coef: str                  # the parameter that scales the term
    powers: tuple[Power, ...]


@dataclasses.dataclass(frozen=True)
class PowerSum:
    floor: str | None          # the bare parameter added to the terms (the paper's E)
    terms: tuple[Term, ...]


@dataclasses.dataclass(frozen=True)
class Form:
    expression: str
    tree: ast.AST = dataclasses.field(repr=False, compare=False)
    inputs: tuple[str, ...]    # in order of first appearance
    params: tuple[str, ...]    # the fitter's order: floor, coefficients, exponents, the rest
    roles: Mapping[str, str] = dataclasses.field(compare=False)
    power_sum: PowerSum | None = dataclasses.field(compare=False)

    # ---- evaluation -------------------------------------------------------------------
    def evaluate(self, X: Mapping, values: Mapping, wrt: Iterable[str] = ()
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(y, {name: dy/dname}) at inputs X and parameter VALUES (arrays broadcast: a batch of
        parameter vectors is values of shape (S, 1) against inputs of shape (n,))."""
        env = {k: np.asarray(X[k], dtype=float) for k in self.inputs} | {
            k: np.asarray(v, dtype=float) for k, v in values.items()}
        with np.errstate(all="ignore"):  # a wild start may overflow: its loss is nan, rejected
            return tree_value(self.tree.body, env, frozenset(wrt))

    def predict(self, X: Mapping, values: Mapping) -> np.ndarray:
        missing = sorted(set(self.inputs) - set(X))
        if missing:
            raise ValueError(f"law needs inputs {missing} ({self.expression!r}); got {sorted(X)}")
        return self.evaluate(X, values)[0]

    def log_jacobian(self, X: Mapping, values: Mapping) -> np.ndarray:
        """(rows, parameters): d log y / d (fit coordinates) -- log P for a floor or coefficient,
        P itself otherwise -- the columns in `params` order."""
        y, grads = self.evaluate(X, values, self.params)
        cols = [grads.get(p, np.zeros_like(y)) * (values[p] if self.is_log(p) else 1.0) / y
                for p in self.params]
        return np.column_stack([np.broadcast_to(c, np.shape(y)) for c in cols])

    # ---- coordinates --------------------------------------------------------------------
    def is_log(self, name: str) -> bool:
        return self.roles[name] in (FLOOR, COEF)

    def to_theta(self, values: Mapping) -> np.ndarray:
        with np.errstate(divide="ignore"):  # a coefficient of exactly 0 is log 0 = -inf
            return np.array([math.log(values[p]) if self.is_log(p) and values[p] > 0 else
                             -math.inf if self.is_log(p) else float(values[p])
                             for p in self.params])

    def to_values(self, theta) -> dict[str, float]:
        with np.errstate(over="ignore"):  # a term the data do not support may run to coef = inf
            return {p: float(np.exp(t)) if self.is_log(p) else float(t)
                    for p, t in zip(self.params, np.asarray(theta, dtype=float))}

    # ---- variants -----------------------------------------------------------------------
    def without(self, inputs: Iterable[str] = (), floor: bool = False) -> Form:
        """The form less its summands that use INPUTS (and, with FLOOR, less its floor): a sum of
        power terms conditional on an input the data cannot tell apart from another."""
        drop = set(inputs)
        if not drop and not floor:
            return self
        keep = [s for s in _summands(self.tree.body)
                if not (drop & _names(s[0]))
                and not (floor and isinstance(s[0], ast.Name) and s[0].id in self.params)]
        if not keep:
            raise InputError(f"law {self.expression!r}: nothing is left without {sorted(drop)}")
        pieces = [ast.get_source_segment(self.expression, n) or ast.unparse(n) for n, _ in keep]
        text = "".join((" - " if sign < 0 else " + ") + p for p, (_, sign) in zip(pieces, keep))
        text = "-" + text[3:] if text.startswith(" - ") else text[3:]
        return parse(text, self.inputs, bool(self.params))

    @property
    def floor(self) -> str | None:
        return self.power_sum.floor if self.power_sum else None


# ---- parsing ----------------------------------------------------------------------------

def parse(expression: str, inputs: Iterable[str], fitted: bool = True) -> Form:
    """The Form of EXPRESSION; a name in INPUTS is an input, any other a free parameter. Not
    FITTED: a known law (a simulated truth), numbers and inputs only."""
    if not isinstance(expression, str) or not expression.strip():
        raise InputError(f"law {expression!r}: expected an expression such as "
                         f"'E + A / dp**alpha'")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        column = err.offset or len(expression.strip()) + 1   # 0 when the text ends too soon
        raise InputError(f"law {expression!r}: column {column}: not an expression "
                         f"({err.msg}); expected {EXPECTED}") from None
    _allowed(tree.body, expression)
    inputs = set(inputs)
    names = _ordered_names(tree.body)
    used_inputs = tuple(n for n in names if n in inputs)
    params = [n for n in names if n not in inputs]
    if not used_inputs:
        raise InputError(f"law {expression!r}: uses no input; expected at least one of "
                         f"{sorted(inputs)}")
    if fitted and not params:
        raise InputError(f"law {expression!r}: has no free parameter to fit")
    if not fitted and params:
        raise InputError(f"law {expression!r}: {params[0]!r} is not an input; expected numbers "
                         f"and the inputs {sorted(inputs)} only")
    roles = _roles(tree.body, set(params), expression)
    ps = _power_sum(tree.body, inputs, set(params))
    order = {FLOOR: 0, COEF: 1, EXPONENT: 2, FREE: 3}
    params.sort(key=lambda p: order[roles[p]])  # stable: first appearance within a role
    return Form(expression.strip(), tree, used_inputs, tuple(params), roles, ps)


def _allowed(node: ast.AST, expression: str) -> None:
    where = f"law {expression!r}: column {getattr(node, 'col_offset', 0) + 1}"
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            raise InputError(f"{where}: operator {type(node.op).__name__} is not allowed; "
                             f"expected {EXPECTED}")
        _allowed(node.left, expression)
        _allowed(node.right, expression)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _allowed(node.operand, expression)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise InputError(f"{where}: {node.value!r} is not a number; expected {EXPECTED}")
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise InputError(f"{where}: {node.id} is a function; call it as {node.id}(...)")
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            shown = name or ast.unparse(node.func)
            raise InputError(f"{where}: unknown function {shown!r}; expected one of "
                             f"{', '.join(FUNCTIONS)}")
        if node.keywords or len(node.args) != FUNCTIONS[name]:
            raise InputError(f"{where}: {name} takes {FUNCTIONS[name]} argument(s), "
                             f"no keywords")
        for a in node.args:
            _allowed(a, expression)
    else:
        raise InputError(f"{where}: {type(node).__name__} ({ast.unparse(node)!r}) is not "
                         f"allowed; expected {EXPECTED}")


def _ordered_names(node: ast.AST) -> list[str]:
    seen: list[str] = []
    found = sorted((n for n in ast.walk(node) if isinstance(n, ast.Name)
                    and n.id not in FUNCTIONS), key=lambda n: n.col_offset)
    for n in found:
        if n.id not in seen:
            seen.append(n.id)
    return seen


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id not in FUNCTIONS}


def _summands(node: ast.AST, sign: int = 1) -> list[tuple[ast.AST, int]]:
    """The top-level sum as (summand, +1 or -1)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        right = -sign if isinstance(node.op, ast.Sub) else sign
        return _summands(node.left, sign) + _summands(node.right, right)
    return [(node, sign)]


def _factors(node: ast.AST, sign: int = 1) -> list[tuple[ast.AST, int]]:
    """A product as (factor, +1 numerator or -1 denominator)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _factors(node.left, sign) + _factors(node.right, sign)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _factors(node.left, sign) + _factors(node.right, -sign)
    return [(node, sign)]


# ---- roles: how the fitter moves each parameter ------------------------------------------

def _roles(body: ast.AST, params: set[str], expression: str) -> dict[str, str]:
    """floor: a bare summand; coef: only ever a factor of a product (a positive scale, fitted in
    log); exponent: inside the exponent of a power; free: anything else."""
    in_exponent: set[str] = set()
    scale_uses: dict[str, int] = {}
    for n in ast.walk(body):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
            in_exponent |= _names(n.right) & params
            if isinstance(n.left, ast.Name) and n.left.id in params and _names(n.right) & params:
                raise InputError(f"law {expression!r}: column {n.col_offset + 1}: "
                                 f"{ast.unparse(n)!r} raises a parameter ({n.left.id}) to a fitted "
                                 f"power: only their combination is identified; expected an input "
                                 f"as the base (is {n.left.id!r} a column the table lacks?)")
    parents = {c: n for n in ast.walk(body) for c in ast.iter_child_nodes(n)}
    for n in ast.walk(body):
        if isinstance(n, ast.Name) and n.id in params and _scales(n, parents, body):
            scale_uses[n.id] = scale_uses.get(n.id, 0) + 1
    total = {p: sum(1 for n in ast.walk(body) if isinstance(n, ast.Name) and n.id == p)
             for p in params}
    floors = {n.id for n, s in _summands(body) if isinstance(n, ast.Name) and n.id in params
              and s > 0 and total[n.id] == 1}
    roles = {}
    for p in params:
        if p in in_exponent:
            roles[p] = EXPONENT
        elif p in floors:
            roles[p] = FLOOR
        elif scale_uses.get(p, 0) >= total[p]:
            roles[p] = COEF
        else:
            roles[p] = FREE
    return roles


def _scales(node: ast.AST, parents: dict, body: ast.AST) -> bool:
    """Whether NODE sits in arithmetic (+ - * /) that reaches the whole expression or the base of
    a power, never a function or an exponent: a scale, fitted as its log when only a factor."""
    child, up = node, parents.get(node)
    while isinstance(up, ast.BinOp) and not isinstance(up.op, ast.Pow):   # + - * /
        child, up = up, parents.get(up)
    return up is None or (isinstance(up, ast.BinOp) and child is up.left)


# ---- sums of power terms -----------------------------------------------------------------

def _power_sum(body: ast.AST, inputs: set[str], params: set[str]) -> PowerSum | None:
    floor, terms = None, []
    for node, sign in _summands(body):
        if sign < 0:
            return None
        if isinstance(node, ast.Name) and node.id in params:
            if floor is not None:
                return None
            floor = node.id
            continue
        term = _term(node, inputs, params)
        if term is None:
            return None
        terms.append(term)
    coefs = [t.coef for t in terms]
    exps = {p.exponent for t in terms for p in t.powers if isinstance(p.exponent, str)}
    if not terms or len(set(coefs)) < len(coefs) or (set(coefs) | {floor}) & exps:
        return None
    return PowerSum(floor, tuple(terms))


def _term(node: ast.AST, inputs: set[str], params: set[str]) -> Term | None:
    coef, powers = None, []
    for f, sign in _factors(node):
        if isinstance(f, ast.Name) and f.id in params:
            if coef is not None or sign < 0:
                return None
            coef = f.id
        elif isinstance(f, ast.Name) and f.id in inputs:
            powers.append(Power(1.0, ((f.id, sign),)))
        elif isinstance(f, ast.BinOp) and isinstance(f.op, ast.Pow):
            p = _power(f, sign, inputs, params)
            if p is None:
                return None
            powers.append(p)
        else:
            return None
    return Term(coef, tuple(powers)) if coef is not None and powers else None


def _power(node: ast.BinOp, sign: int, inputs: set[str], params: set[str]) -> Power | None:
    base = _factors(node.left)
    if not all(isinstance(b, ast.Name) and b.id in inputs for b, _ in base):
        return None
    e, esign = node.right, 1
    if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
        e, esign = e.operand, -1
    if isinstance(e, ast.Name) and e.id in params:
        exponent: str | float = e.id
    elif isinstance(e, ast.Constant):
        exponent, esign = float(e.value) * esign, 1
    else:
        return None
    return Power(exponent, tuple((b.id, sign * bs * esign) for b, bs in base))


def parse_with_params(expression: str, params: Iterable[str]) -> Form:
    """The Form of a stored law (fits.json): every name that is not one of PARAMS is an input."""
    try:
        names = _names(ast.parse(expression, mode="eval").body)
    except SyntaxError as err:
        raise InputError(f"law {expression!r}: column {err.offset}: not an expression") from None
    return parse(expression, names - set(params))
