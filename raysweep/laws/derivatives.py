"""Forward-mode evaluation of a law's allow-listed tree (laws/form.py): the value and its
derivatives with respect to any of its names at once, for numpy arrays that broadcast (a batch of
parameter vectors as (S, 1) columns against (n,) rows). No `eval`: each node type the parser allows
has its rule here, and no other can reach it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import numpy as np


def tree_value(node: ast.AST, env: Mapping, wrt: frozenset) -> tuple[np.ndarray, dict]:
    """(value, {name: derivative}) of NODE; derivatives only for names in WRT that it uses."""
    if isinstance(node, ast.Constant):
        return np.asarray(float(node.value)), {}
    if isinstance(node, ast.Name):
        return env[node.id], ({node.id: np.ones_like(env[node.id])} if node.id in wrt else {})
    if isinstance(node, ast.UnaryOp):
        v, d = tree_value(node.operand, env, wrt)
        return (-v, {k: -g for k, g in d.items()}) if isinstance(node.op, ast.USub) else (v, d)
    if isinstance(node, ast.Call):
        return _call(node.func.id, [tree_value(a, env, wrt) for a in node.args])
    u, du = tree_value(node.left, env, wrt)
    v, dv = tree_value(node.right, env, wrt)
    op = type(node.op)
    if op is ast.Add:
        return u + v, _combine(du, 1.0, dv, 1.0)
    if op is ast.Sub:
        return u - v, _combine(du, 1.0, dv, -1.0)
    if op is ast.Mult:
        return u * v, _combine(du, v, dv, u)
    if op is ast.Div:
        return u / v, _combine(du, 1.0 / v, dv, -u / (v * v))
    y = u ** v   # d(u^v) = v u^(v-1) du + u^v log(u) dv
    return y, _combine(du, v * u ** (v - 1.0), dv, y * np.log(u) if dv else 0.0)


def _combine(du: dict, a, dv: dict, b) -> dict:
    out = {k: g * a for k, g in du.items()}
    for k, g in dv.items():
        out[k] = out[k] + g * b if k in out else g * b
    return out


def _call(name: str, args: list) -> tuple[np.ndarray, dict]:
    (u, du), rest = args[0], args[1:]
    if name == "exp":
        y = np.exp(u)
        return y, {k: g * y for k, g in du.items()}
    if name == "log":
        return np.log(u), {k: g / u for k, g in du.items()}
    if name == "sqrt":
        y = np.sqrt(u)
        return y, {k: g / (2.0 * y) for k, g in du.items()}
    v, dv = rest[0]
    first = (u <= v) if name == "minimum" else (u >= v)
    y = np.where(first, u, v)
    keys = set(du) | set(dv)
    return y, {k: np.where(first, du.get(k, 0.0), dv.get(k, 0.0)) for k in keys}




def undefined_at(form, X: Mapping, values: Mapping) -> str | None:
    """Where FORM cannot be evaluated at the rows X (log of a negative, 0 ** -a, ...): 'column C:
    EXPR is undefined at row I (inputs ...)', the innermost such subexpression; None if nowhere.
    Only subexpressions whose every name has a value are looked at: with VALUES empty, the parts
    made of inputs alone, which no parameter can repair."""
    env = {k: np.asarray(X[k], dtype=float) for k in form.inputs} | {
        k: np.asarray(v, dtype=float) for k, v in values.items()}

    def first_bad(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AST) and not isinstance(child, (ast.operator, ast.unaryop,
                                                                     ast.expr_context)):
                found = first_bad(child)
                if found:
                    return found
        calls = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call)}
        if {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - calls - set(env):
            return None   # a parameter without a value in it
        with np.errstate(all="ignore"):
            v = np.broadcast_to(tree_value(node, env, frozenset())[0],
                                np.shape(env[form.inputs[0]]))
        bad = np.flatnonzero(~np.isfinite(v))
        return (node, int(bad[0])) if bad.size else None

    found = first_bad(form.tree.body)
    if not found:
        return None
    node, row = found
    at = ", ".join(f"{k} = {float(np.ravel(X[k])[row]):g}" for k in form.inputs)
    text = ast.get_source_segment(form.expression, node) or ast.unparse(node)
    return f"column {node.col_offset + 1}: {text!r} is undefined at row {row} ({at})"
