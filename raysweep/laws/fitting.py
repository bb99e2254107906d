"""Fitting y = E + sum_k coef_k * x_k^(-exponent_k) the way Hoffmann et al. 2022 (approach 3) do, as
replicated by Besiroglu et al. 2024 ("Chinchilla scaling: a replication attempt").

Parameters theta = (e, a_1..a_k, alpha_1..alpha_k) with E = exp(e), coef_k = exp(a_k); the law in
log space is log y = logsumexp(e, a_k - alpha_k * log x_k), and the objective is the Huber loss
(delta = 1e-3) of log y_pred - log y, summed over rows. The best of many local optima wins.

How it is fast (a scipy loop with numeric gradients from 4,500 starts takes minutes):
1. every start is refined at once, as one numpy batch laid out (term, start, row), by
   Levenberg-Marquardt on the Huber loss's IRLS majoriser (curvature psi(r)/r per row, so an
   accepted step never increases the loss); starts are screened by successive halving (`SCREEN`);
2. the few best survivors are polished by scipy's L-BFGS-B with the analytic gradient, and the
   lowest objective wins. tests/benchmarks/bench_fit.py checks that this lands on the optimum of
   a full L-BFGS-B run from every start of the grid.
Bootstrap refits resample rows as multinomial counts (a weight per row), so all replicates share one
design matrix and run as one batch, warm-started from the full-data optimum plus perturbed copies;
each replicate's best is refined by more batched LM steps before its polish, which then starts
near the optimum (on flat valleys, a law with a floor the rows barely show, L-BFGS-B from the
screened start took up to 270 iterations a replicate).

Left out: bounds on the parameters (the replication runs unbounded; a negative exponent is reported,
not hidden) and other interval methods (the percentile bootstrap is what the replication reports).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from raysweep.errors import InputError

DELTA = 1e-3  # Huber threshold on log-residuals (Hoffmann et al. 2022)
# The replication's grid for two inputs: 5 x 6^2 x 5^2 = 4,500 starts.
GRID = {"e": (-1.0, -0.5, 0.0, 0.5, 1.0), "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        "alpha": (0.0, 0.5, 1.0, 1.5, 2.0)}
MAX_GRID_STARTS = 5000  # beyond this (3+ inputs: 5 x 30^3 = 135,000) use Sobol points instead
SOBOL_STARTS = 4096     # 2^12 quasi-random starts in the grid's box [-1, 1] x [0, 25]^k x [0, 2]^k
# Successive halving: (starts kept, LM iterations). 4,500 -> 450 -> 45 -> 8 polished.
SCREEN = ((1.0, 4), (0.1, 12), (0.01, 40))
POLISH = 8              # best distinct survivors handed to L-BFGS-B
BOOT_STARTS = 4         # per bootstrap replicate: the full optimum + 3 perturbed copies
BOOT_JITTER = (0.1, 1.0, 0.05)  # perturbation sd of (e, a_k, alpha_k)
BOOT_ITERS = 40
BOOT_REFINE = 200       # then LM on each replicate's winner, before L-BFGS-B: the polish converges
                        # in 5-70 iterations instead of 45-270, twice as fast on the default's
                        # rows; objectives within 1e-4 of the polish-only ones, as often lower as
                        # higher (BENCHMARKS.md, "Bootstrap refits, refined")
STALL = 5               # ... stopped early once no replicate gains 1e-12 of its loss for 5 steps
LEVEL = 95.0            # percent; percentile intervals
TAILS = ((100.0 - LEVEL) / 2, (100.0 + LEVEL) / 2)   # percent: an interval's two ends
NO_FLOOR = -math.inf    # e of a law fitted without E (floor=False): E = exp(e) = 0 exactly, and
                        # the LM step and the polish leave it there (its Jacobian column is 0)


@dataclasses.dataclass(frozen=True)
class Law:
    E: float
    terms: dict[str, tuple[float, float]]  # input -> (coef, exponent); the paper's lambda = 1/coef

    def predict(self, X: Mapping[str, np.ndarray | float]) -> np.ndarray:
        missing = sorted(set(self.terms) - set(X))
        if missing:
            raise ValueError(f"law needs inputs {missing}; got {sorted(X)}")
        y = np.asarray(self.E, dtype=float)
        # A bootstrap member whose coef overflowed to inf predicts nan (inf * 0), not a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            for name, (coef, exponent) in self.terms.items():
                y = y + coef * np.asarray(X[name], dtype=float) ** -exponent
        return y

    def to_dict(self) -> dict:
        # coef underflows to 0 when a -> -inf (a term the data do not support): lambda is inf
        return {"E": self.E, "terms": {k: {"coef": c, "exponent": x,
                                           "lambda": 1.0 / c if c else math.inf}
                                       for k, (c, x) in self.terms.items()}}


@dataclasses.dataclass(frozen=True)
class Fit:
    law: Law
    objective: float                 # summed Huber loss at the optimum
    n: int                           # rows used
    inputs: tuple[str, ...]
    ci: dict[str, tuple[float, float]] | None  # "E", "<input>.coef", "<input>.exponent"
    ensemble: list[Law] | None       # bootstrap laws, in replicate order


# ---- the batched objective -------------------------------------------------------------------

def _terms(theta: np.ndarray, logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log y_pred (S, n), softmax weights (k+1, S, n)) for S parameter vectors at once."""
    k = logx.shape[0]
    t = np.empty((k + 1, theta.shape[0], logx.shape[1]))  # term-major: each slice contiguous
    t[0] = theta[:, :1]
    for j in range(k):
        np.multiply(theta[:, 1 + k + j, None], -logx[j], out=t[j + 1])
        t[j + 1] += theta[:, 1 + j, None]
    top = t.max(axis=0)
    t -= top
    np.exp(t, out=t)
    total = t.sum(axis=0)
    t /= total
    return top + np.log(total), t


def _huber(r: np.ndarray) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= DELTA, 0.5 * r * r, DELTA * (a - 0.5 * DELTA))


def _jacobian(w: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """d log y_pred / d theta, laid out (S, p, n): [w_0, w_k, -w_k log x_k]."""
    k = logx.shape[0]
    jac = np.empty((w.shape[1], 1 + 2 * k, w.shape[2]))
    jac[:, :k + 1] = w.transpose(1, 0, 2)
    np.multiply(w[1:].transpose(1, 0, 2), -logx, out=jac[:, k + 1:])
    return jac


def _lm(theta, logx, logy, counts, iters: int, rtol: float | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the IRLS majoriser of the Huber loss, for every row of THETA; with
    RTOL, stopped once no row has gained more than RTOL of its loss for STALL iterations."""
    theta = theta.copy()
    lse, w = _terms(theta, logx)
    r = lse - logy
    f = (counts * _huber(r)).sum(axis=1)
    mu = np.full(len(theta), 1e-3)
    eye = np.eye(theta.shape[1])
    stalled = 0
    for _ in range(iters):
        jac = _jacobian(w, logx)
        psi, absr = np.clip(r, -DELTA, DELTA), np.maximum(np.abs(r), DELTA)
        g = np.einsum("spn,sn->sp", jac, counts * psi)
        h = (jac * (counts * DELTA / absr)[:, None, :]) @ jac.transpose(0, 2, 1)
        # Marquardt's damping, mu * diag(h), scales with each parameter's own curvature (a_k and
        # alpha_k differ by a factor log x ~ 20); the 1e-12 keeps a dead term's zero column solvable.
        damp = mu[:, None, None] * (h * eye + 1e-12 * eye)
        step = _solve(h + damp, -g)
        trial = theta + step
        lse_t, w_t = _terms(trial, logx)
        r_t = lse_t - logy
        f_t = (counts * _huber(r_t)).sum(axis=1)
        ok = np.isfinite(f_t) & (f_t < f)
        if rtol is not None:
            stalled = 0 if np.any(f[ok] - f_t[ok] > rtol * f[ok]) else stalled + 1
        theta[ok], r[ok], f[ok], w[:, ok] = trial[ok], r_t[ok], f_t[ok], w_t[:, ok]
        mu = np.clip(np.where(ok, mu / 3.0, mu * 4.0), 1e-9, 1e9)
        if stalled >= STALL:
            break
    return theta, f


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched a x = b; a singular member gets its least-squares step instead of failing all."""
    try:
        return np.linalg.solve(a, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b)])


def _scalar(theta, logx, logy, counts):
    """Objective / DELTA and its gradient for scipy (scaled so that it reads as a sum of |r|)."""
    lse, w = _terms(theta[None], logx)
    r = lse[0] - logy
    g = _jacobian(w, logx)[0] @ (counts * np.clip(r, -DELTA, DELTA))
    return float((counts * _huber(r)).sum()) / DELTA, g / DELTA


def _polish(theta, logx, logy, counts) -> tuple[np.ndarray, float]:
    # Tolerances far below the default: the replication traced Hoffmann et al.'s published numbers
    # to an optimiser stopped early on this very flat objective.
    options = {"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-10}
    if theta[0] == NO_FLOOR:  # a law without E: L-BFGS-B moves the other parameters only
        def scalar(x, *args):
            f, g = _scalar(np.concatenate(([NO_FLOOR], x)), *args)
            return f, g[1:]
        res = optimize.minimize(scalar, theta[1:], args=(logx, logy, counts), jac=True,
                                method="L-BFGS-B", options=options)
        return np.concatenate(([NO_FLOOR], res.x)), float(res.fun) * DELTA
    res = optimize.minimize(_scalar, theta, args=(logx, logy, counts), jac=True,
                            method="L-BFGS-B", options=options)
    return res.x, float(res.fun) * DELTA


# ---- starts --------------------------------------------------------------------------------

def default_starts(k: int, seed: int = 0) -> np.ndarray:
    """The replication's grid where it has <= MAX_GRID_STARTS points (1-2 inputs), else Sobol."""
    if len(GRID["e"]) * (len(GRID["a"]) * len(GRID["alpha"])) ** k <= MAX_GRID_STARTS:
        return grid_starts(GRID, k)
    return sobol_starts(k, SOBOL_STARTS, seed)


def grid_starts(grid: Mapping[str, Sequence[float]], k: int) -> np.ndarray:
    axes = [grid["e"]] + [grid["a"]] * k + [grid["alpha"]] * k
    return np.array(list(itertools.product(*axes)), dtype=float)


def sobol_starts(k: int, count: int, seed: int = 0) -> np.ndarray:
    """COUNT scrambled Sobol points in the grid's box: e in [-1, 1], a_k in [0, 25], alpha_k in
    [0, 2] (the first COUNT of the next power of two, which keeps Sobol's balance)."""
    lo = np.array([min(GRID["e"])] + [min(GRID["a"])] * k + [min(GRID["alpha"])] * k)
    hi = np.array([max(GRID["e"])] + [max(GRID["a"])] * k + [max(GRID["alpha"])] * k)
    unit = stats.qmc.Sobol(1 + 2 * k, seed=seed).random_base2(math.ceil(math.log2(count)))
    return lo + unit[:count] * (hi - lo)


def _starts(spec, k: int, seed: int) -> np.ndarray:
    """None -> default; int N -> N Sobol points; {"e","a","alpha"} axes -> product; (S, 1+2k)."""
    if spec is None:
        return default_starts(k, seed)
    if isinstance(spec, int) and not isinstance(spec, bool) and spec > 0:
        return sobol_starts(k, spec, seed)
    if isinstance(spec, Mapping):
        if set(spec) != set(GRID):
            raise ValueError(f"starts grid has axes {sorted(spec)}; expected {sorted(GRID)}")
        return grid_starts(spec, k)
    arr = np.asarray(spec, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 1 + 2 * k or not np.isfinite(arr).all():
        raise ValueError(f"starts must be None, a positive int, a grid {{e, a, alpha}} or a "
                         f"finite array of shape (S, {1 + 2 * k}); got {spec!r:.80}")
    return arr


# ---- fitting -------------------------------------------------------------------------------

def _check(X: Mapping[str, np.ndarray], y) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(input names, log x (k, n), log y (n,)) or a ValueError naming what is wrong."""
    if not X:
        raise InputError("no inputs: X must map at least one input name to its values")
    names = tuple(X)
    cols = {k: np.asarray(v, dtype=float).ravel() for k, v in X.items()}
    y = np.asarray(y, dtype=float).ravel()
    lengths = {k: len(v) for k, v in cols.items()} | {"target": len(y)}
    if len(set(lengths.values())) > 1:
        raise InputError(f"inputs and target differ in length: {lengths}")
    for name, v in list(cols.items()) + [("target", y)]:
        bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
        if bad.size:
            raise InputError(f"{name} has {bad.size} non-positive or non-finite value(s) (first at "
                             f"row {bad[0]}: {v[bad[0]]}); the law is fitted in log space, which "
                             f"needs every value > 0")
    p = 1 + 2 * len(names)
    if len(y) < p:
        raise InputError(f"{len(y)} rows for {p} parameters (E, and a coef and an exponent per "
                         f"input {list(names)}); need at least {p} rows")
    for name, v in cols.items():
        if np.unique(v).size < 2:
            raise InputError(f"input {name!r} has a single value ({v[0]:g}): its term cannot be "
                             f"told apart from E; leave it out of the fit")
    return names, np.log(np.stack([cols[k] for k in names])), np.log(y)


def _law(theta: np.ndarray, names: Sequence[str]) -> Law:
    k = len(names)
    with np.errstate(over="ignore"):  # a term the data do not support may run to coef = inf
        return Law(float(np.exp(theta[0])),
                   {n: (float(np.exp(theta[1 + j])), float(theta[1 + k + j])) for j, n in
                    enumerate(names)})


def _best(starts, logx, logy, counts) -> tuple[np.ndarray, float, np.ndarray]:
    """Successive halving over STARTS, then L-BFGS-B polish: (theta, objective, survivors)."""
    theta, f = starts, None
    for keep, iters in SCREEN:
        if f is not None:  # keep the best share of the previous stage's survivors
            theta = theta[_ranked(f)[: max(POLISH, round(keep * len(starts)))]]
        theta, f = _lm(theta, logx, logy, np.broadcast_to(counts, (len(theta), len(logy))), iters)
    theta = theta[_ranked(f)[:POLISH]]
    polished = [_polish(t, logx, logy, counts) for t in theta[:POLISH]]
    x, obj = min(polished, key=lambda tf: tf[1] if np.isfinite(tf[1]) else np.inf)
    if not np.isfinite(obj):
        raise InputError("every start diverged; the data do not follow a power law plus constant")
    return x, obj, theta


def _ranked(f: np.ndarray) -> np.ndarray:
    return np.argsort(np.where(np.isfinite(f), f, np.inf))


def fit_law(X: Mapping[str, np.ndarray], y: np.ndarray, *, starts=None, bootstrap: int = 0,
            seed: int = 0, floor: bool = True) -> Fit:
    """The best-of-starts fit of y = E + sum_k coef_k x_k^-exponent_k; with BOOTSTRAP > 0 also
    percentile 95 % intervals and the replicate laws. Without FLOOR the law has no E (E = 0, not
    fitted, and no interval for it): y = sum_k coef_k x_k^-exponent_k."""
    names, logx, logy = _check(X, y)
    starts = _starts(starts, len(names), seed)
    if not floor:
        starts = np.unique(np.column_stack([np.full(len(starts), NO_FLOOR), starts[:, 1:]]),
                           axis=0)
    theta, obj, _ = _best(starts, logx, logy, np.ones(len(logy)))
    law = _law(theta, names)
    if bootstrap <= 0:
        return Fit(law, obj, len(logy), names, None, None)
    ensemble = _bootstrap(theta, logx, logy, bootstrap, np.random.default_rng(seed))
    laws = [_law(t, names) for t in ensemble]
    ci = _intervals(ensemble, names)
    if not floor:
        del ci["E"]
    return Fit(law, obj, len(logy), names, ci, laws)


def _bootstrap(theta, logx, logy, b: int, rng) -> np.ndarray:
    """(b, p) optima of row-resampled refits, each the best of BOOT_STARTS warm starts."""
    n, p = len(logy), len(theta)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
    jitter = np.array([BOOT_JITTER[0]] + [BOOT_JITTER[1]] * (p // 2) + [BOOT_JITTER[2]] * (p // 2))
    starts = theta + rng.normal(size=(b, BOOT_STARTS, p)) * jitter
    starts[:, 0] = theta
    refined, f = _lm(starts.reshape(-1, p), logx, logy, np.repeat(counts, BOOT_STARTS, axis=0),
                     BOOT_ITERS)
    best = np.nanargmin(np.where(np.isfinite(f), f, np.nan).reshape(b, BOOT_STARTS), axis=1)
    winners = refined.reshape(b, BOOT_STARTS, p)[np.arange(b), best]
    winners, _ = _lm(winners, logx, logy, counts, BOOT_REFINE, rtol=1e-12)
    return np.array([_polish(t, logx, logy, c)[0] for t, c in zip(winners, counts)])


def _intervals(ensemble: np.ndarray, names: Sequence[str]) -> dict[str, tuple[float, float]]:
    k = len(names)
    # An unconstrained coef's interval runs to inf: say so. numpy interpolating between two
    # infinite members computes inf - inf (a warning, and nan); the quantile is inf.
    with np.errstate(over="ignore", invalid="ignore"):
        cols = {"E": np.exp(ensemble[:, 0])}
        for j, name in enumerate(names):
            cols[f"{name}.coef"] = np.exp(ensemble[:, 1 + j])
            cols[f"{name}.exponent"] = ensemble[:, 1 + k + j]
        q = {key: np.percentile(v, TAILS) for key, v in cols.items()}
    return {key: tuple(float(x) for x in np.where(np.isnan(v), np.inf, v))
            for key, v in q.items()}


def percentile(values: list) -> list[float] | None:
    """[lo, hi] of the LEVEL percentile interval of VALUES, the Nones (members with no answer)
    left out; None when no value is left."""
    vals = [v for v in values if v is not None]
    return [float(q) for q in np.percentile(vals, TAILS)] if vals else None
