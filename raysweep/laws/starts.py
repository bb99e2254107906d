"""Where the fitter starts: many points in each parameter's plausible box, by the parameter's role.

The boxes are the replication's grid (Besiroglu et al. 2024): a floor's log in [-1, 1], a
coefficient's log in [0, 25], an exponent in [0, 2]; a parameter of any other role in [-1, 1]. A
form with few parameters is started from the grid's every point (5 x 6^2 x 5^2 = 4,500 for the
paper's form on two inputs); beyond MAX_GRID_STARTS, from Sobol points in the same box. `--init
NAME=LO:HI` replaces one parameter's box (in its own units; a floor or coefficient, fitted as a
log, needs 0 < LO).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
from scipy import stats

from raysweep.errors import InputError
from raysweep.laws.form import COEF, EXPONENT, FLOOR, FREE, Form

GRID = {"e": (-1.0, -0.5, 0.0, 0.5, 1.0), "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        "alpha": (0.0, 0.5, 1.0, 1.5, 2.0)}
AXIS_OF_ROLE = {FLOOR: "e", COEF: "a", EXPONENT: "alpha", FREE: "free"}
FREE_AXIS = (-1.0, -0.5, 0.0, 0.5, 1.0)
MAX_GRID_STARTS = 5000  # beyond this (3+ inputs: 5 x 30^3 = 135,000) use Sobol points instead
SOBOL_STARTS = 4096     # 2^12 quasi-random starts in the grid's box


def axes(form: Form, grid: Mapping | None = None, init: Mapping | None = None) -> list:
    """Per parameter (form order), the values the grid takes: by role, or 5 over its INIT range."""
    grid = {**GRID, "free": FREE_AXIS, **(grid or {})}
    out = []
    for p in form.params:
        if init and p in init:
            lo, hi = _fit_range(form, p, *init[p])
            out.append(tuple(np.linspace(lo, hi, 5)))
        else:
            out.append(tuple(grid[AXIS_OF_ROLE[form.roles[p]]]))
    return out


def _fit_range(form: Form, name: str, lo: float, hi: float) -> tuple[float, float]:
    if not lo < hi:
        raise InputError(f"--init {name}={lo:g}:{hi:g}: expected LO < HI")
    if form.is_log(name):
        if lo <= 0:
            raise InputError(f"--init {name}={lo:g}:{hi:g}: {name} is a positive scale of "
                             f"{form.expression!r}, fitted as its log; expected 0 < LO < HI")
        return math.log(lo), math.log(hi)
    return float(lo), float(hi)


def check_init(form: Form, init: Mapping | None) -> None:
    unknown = sorted(set(init or ()) - set(form.params))
    if unknown:
        raise InputError(f"--init {unknown[0]}: not a parameter of {form.expression!r}; its "
                         f"parameters are {', '.join(form.params)}")


def grid_starts(lists: list) -> np.ndarray:
    return np.array(list(itertools.product(*lists)), dtype=float)


def sobol_starts(lists: list, count: int, seed: int = 0) -> np.ndarray:
    """COUNT scrambled Sobol points in the box spanned by each axis' ends (the first COUNT of the
    next power of two, which keeps Sobol's balance)."""
    lo, hi = np.array([min(a) for a in lists]), np.array([max(a) for a in lists])
    unit = stats.qmc.Sobol(len(lists), seed=seed).random_base2(math.ceil(math.log2(count)))
    return lo + unit[:count] * (hi - lo)


def starts(form: Form, spec=None, seed: int = 0, init: Mapping | None = None) -> np.ndarray:
    """None -> the grid or Sobol points; int N -> N Sobol points; {"e","a","alpha"} axes ->
    their product; an array (S, parameters) as given."""
    check_init(form, init)
    p = len(form.params)
    if spec is None:
        lists = axes(form, init=init)
        # A sum of power terms without a floor starts where the same sum with one would, less
        # the floor's column: its Sobol points keep the dimension, hence the points, of that box.
        floorless = form.power_sum is not None and form.floor is None
        lists = [GRID["e"]] * floorless + lists
        if math.prod(len(a) for a in lists) <= MAX_GRID_STARTS:
            points = grid_starts(lists)
        else:
            points = sobol_starts(lists, SOBOL_STARTS, seed)
        return np.unique(points[:, 1:], axis=0) if floorless else points
    if isinstance(spec, int) and not isinstance(spec, bool) and spec > 0:
        return sobol_starts(axes(form, init=init), spec, seed)
    if isinstance(spec, Mapping):
        if set(spec) != set(GRID):
            raise ValueError(f"starts grid has axes {sorted(spec)}; expected {sorted(GRID)}")
        return grid_starts(axes(form, spec, init))
    arr = np.asarray(spec, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != p or not np.isfinite(arr).all():
        raise ValueError(f"starts must be None, a positive int, a grid {{e, a, alpha}} or a "
                         f"finite array of shape (S, {p}); got {spec!r:.80}")
    return arr
