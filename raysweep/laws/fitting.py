"""Fitting a declared law (laws/form.py) the way Hoffmann et al. 2022 (approach 3) fit
y = E + sum_k coef_k * x_k^(-exponent_k), as replicated by Besiroglu et al. 2024 ("Chinchilla
scaling: a replication attempt").

The parameters move in the form's fit coordinates theta: a floor or coefficient as its log (E =
exp(e), coef_k = exp(a_k)), an exponent as itself; the objective is the Huber loss (delta = 1e-3)
of log y_pred - log y, summed over rows. The best of many local optima wins. A sum of power terms
is evaluated in log space as a logsumexp (laws/models.py, fast); any other form by its tree, with
the same objective, starts, steps and bootstrap.

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
screened start took hundreds of iterations a replicate).

Left out: bounds on the parameters (the replication runs unbounded; a negative exponent is reported,
not hidden) and other interval methods (the percentile bootstrap is what the replication reports).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import optimize

from raysweep.errors import InputError
from raysweep.laws import starts as start_points
from raysweep.laws.derivatives import undefined_at
from raysweep.laws.form import Form
from raysweep.laws.law import Fit, Law, additive_form
from raysweep.laws.models import model

DELTA = 1e-3  # Huber threshold on log-residuals (Hoffmann et al. 2022)
# Successive halving: (starts kept, LM iterations). 4,500 -> 450 -> 45 -> 8 polished.
SCREEN = ((1.0, 4), (0.1, 12), (0.01, 40))
POLISH = 8              # best distinct survivors handed to L-BFGS-B
BOOT_STARTS = 4         # per bootstrap replicate: the full optimum + 3 perturbed copies
BOOT_JITTER = {"floor": 0.1, "coef": 1.0, "exponent": 0.05, "free": 0.05}  # perturbation sd
                                                                            # per role
BOOT_ITERS = 40
BOOT_REFINE = 200       # then LM on each replicate's winner, before L-BFGS-B: the polish then
                        # starts near the optimum and converges in far fewer iterations
                        # (BENCHMARKS.md, "Bootstrap refits, refined")
STALL = 5               # ... stopped early once no replicate gains 1e-12 of its loss for 5 steps
# Jacobian bytes of the starts that take an LM step together, at most. A start's Jacobian is p x n
# floats: 4,096 starts of a 6-parameter law over 2,400 rows are 4,096 x 6 x 2,400 x 8 B = 470 MB,
# and a step holds a few arrays that size. Starts are independent (each has its own damping and
# acceptance), so blocks change no result and bound a fit's memory whatever the number of rows.
BLOCK_BYTES = 16 * 2**20
# Delete-a-group jackknife for the boundary's BCa acceleration (laws/intervals.py): K groups, one
# warm-started refit each, as a bootstrap replicate is. The acceleration is the skewness of K
# values over 6 sqrt(K); its sampling sd is about sqrt(6 / K) / (6 sqrt(K)) = 0.41 / K, so K = 20
# reads it to +-0.02 for 20 refits, a tenth of a 200-resample bootstrap; delete-one would cost a
# refit per row.
JACKKNIFE_GROUPS = 20
LEVEL = 95.0            # percent; percentile intervals
TAILS = ((100.0 - LEVEL) / 2, (100.0 + LEVEL) / 2)   # percent: an interval's two ends


# ---- the batched objective -------------------------------------------------------------------

def _huber(r: np.ndarray) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= DELTA, 0.5 * r * r, DELTA * (a - 0.5 * DELTA))


def _loss(lse, logy, counts) -> tuple[np.ndarray, np.ndarray]:
    r = lse - logy
    with np.errstate(invalid="ignore"):   # a row left out of a resample (count 0) at inf
        f = (counts * _huber(r)).sum(axis=1)
    return r, np.where(np.isnan(f), np.inf, f)   # an undefined prediction: no step lands there


def _lm(theta, mdl, logy, counts, iters: int, rtol: float | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the IRLS majoriser of the Huber loss, for every row of THETA; with
    RTOL, stopped once no row has gained more than RTOL of its loss for STALL iterations."""
    theta = theta.copy()
    lse, state = mdl.value(theta)
    r, f = _loss(lse, logy, counts)
    mu = np.full(len(theta), 1e-3)
    eye = np.eye(theta.shape[1])
    stalled = 0
    for _ in range(iters):
        jac = mdl.jacobian(theta, state)
        psi, absr = np.clip(r, -DELTA, DELTA), np.maximum(np.abs(r), DELTA)
        psi = np.where(np.isfinite(psi), psi, 0.0)
        g = np.einsum("spn,sn->sp", jac, counts * psi)
        h = (jac * (counts * DELTA / absr)[:, None, :]) @ jac.transpose(0, 2, 1)
        h = np.where(np.isfinite(h), h, 0.0)
        # Marquardt's damping, mu * diag(h), scales with each parameter's own curvature (a_k and
        # alpha_k differ by a factor log x ~ 20); the 1e-12 keeps a dead term's zero column solvable.
        damp = mu[:, None, None] * (h * eye + 1e-12 * eye)
        step = _solve(h + damp, -g)
        trial = theta + step
        lse_t, state_t = mdl.value(trial)
        r_t, f_t = _loss(lse_t, logy, counts)
        ok = np.isfinite(f_t) & (f_t < f)
        if rtol is not None:
            stalled = 0 if np.any(f[ok] - f_t[ok] > rtol * f[ok]) else stalled + 1
        theta[ok], r[ok], f[ok] = trial[ok], r_t[ok], f_t[ok]
        if state is not None:
            state[:, ok] = state_t[:, ok]
        mu = np.clip(np.where(ok, mu / 3.0, mu * 4.0), 1e-9, 1e9)
        if stalled >= STALL:
            break
    return theta, f


def _lm_blocks(theta, mdl, logy, counts, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """_lm (no stopping rule) on blocks of THETA's rows, and COUNTS' (S, n), of at most
    BLOCK_BYTES of Jacobian each."""
    size = max(1, BLOCK_BYTES // (8 * theta.shape[1] * len(logy)))
    parts = [_lm(theta[i:i + size], mdl, logy, counts[i:i + size], iters)
             for i in range(0, len(theta), size)]
    return np.concatenate([t for t, _ in parts]), np.concatenate([f for _, f in parts])


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched a x = b; a singular member gets its least-squares step instead of failing all."""
    try:
        return np.linalg.solve(a, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b)])


def _scalar(theta, mdl, logy, counts):
    """Objective / DELTA and its gradient for scipy (scaled so that it reads as a sum of |r|)."""
    lse, state = mdl.value(theta[None])
    r = lse[0] - logy
    if not np.all(np.isfinite(r)):
        return np.inf, np.zeros_like(theta)
    g = mdl.jacobian(theta[None], state)[0] @ (counts * np.clip(r, -DELTA, DELTA))
    return float((counts * _huber(r)).sum()) / DELTA, g / DELTA


def _polish(theta, mdl, logy, counts) -> tuple[np.ndarray, float]:
    # Tolerances far below the default: the replication traced Hoffmann et al.'s published numbers
    # to an optimiser stopped early on this very flat objective.
    options = {"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-10}
    res = optimize.minimize(_scalar, theta, args=(mdl, logy, counts), jac=True,
                            method="L-BFGS-B", options=options)
    start = _scalar(theta, mdl, logy, counts)[0]
    if not res.fun <= start:   # nan, or a line search that left the start's basin
        return theta, start * DELTA
    return res.x, float(res.fun) * DELTA


# ---- fitting -------------------------------------------------------------------------------

def _check(form: Form, X: Mapping[str, np.ndarray], y) -> tuple[dict, np.ndarray]:
    """(the form's input columns, log y (n,)) or an InputError naming what is wrong."""
    missing = [k for k in form.inputs if k not in X]
    if missing:
        raise InputError(f"law {form.expression!r}: no input(s) {missing}; the rows have "
                         f"{sorted(X)}")
    cols = {k: np.asarray(X[k], dtype=float).ravel() for k in form.inputs}
    y = np.asarray(y, dtype=float).ravel()
    lengths = {k: len(v) for k, v in cols.items()} | {"target": len(y)}
    if len(set(lengths.values())) > 1:
        raise InputError(f"inputs and target differ in length: {lengths}")
    positive = list(cols) if form.power_sum else []   # a power term takes the log of its input
    for name, v in [(k, cols[k]) for k in positive] + [("target", y)]:
        bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
        if bad.size:
            raise InputError(f"{name} has {bad.size} non-positive or non-finite value(s) (first at "
                             f"row {bad[0]}: {v[bad[0]]}); the law is fitted in log space, which "
                             f"needs every value > 0")
    where = undefined_at(form, cols, {})
    if where:
        raise InputError(f"law {form.expression!r} cannot be evaluated at the data: {where}; "
                         f"expected a form defined at every row")
    p = len(form.params)
    if len(y) < p:
        raise InputError(f"{len(y)} rows for {p} parameters ({', '.join(form.params)} of "
                         f"{form.expression!r}); need at least {p} rows")
    for name, v in cols.items():
        if np.unique(v).size < 2:
            raise InputError(f"input {name!r} has a single value ({v[0]:g}): its term cannot be "
                             f"told apart from E; leave it out of the fit")
    return cols, np.log(y)


def _best(starts, mdl, logy, counts) -> tuple[np.ndarray, float, np.ndarray]:
    """Successive halving over STARTS, then L-BFGS-B polish: (theta, objective, survivors)."""
    theta, f = starts, None
    for keep, iters in SCREEN:
        if f is not None:  # keep the best share of the previous stage's survivors
            theta = theta[_ranked(f)[: max(POLISH, round(keep * len(starts)))]]
        theta, f = _lm_blocks(theta, mdl, logy, np.broadcast_to(counts, (len(theta), len(logy))),
                              iters)
    theta = theta[_ranked(f)[:POLISH]]
    polished = [_polish(t, mdl, logy, counts) for t in theta[:POLISH]]
    x, obj = min(polished, key=lambda tf: tf[1] if np.isfinite(tf[1]) else np.inf)
    return x, obj, theta


def _ranked(f: np.ndarray) -> np.ndarray:
    return np.argsort(np.where(np.isfinite(f), f, np.inf))


def fit_form(form: Form, X: Mapping[str, np.ndarray], y: np.ndarray, *, starts=None,
             bootstrap: int = 0, seed: int = 0, init: Mapping | None = None,
             jackknife: int = 0) -> Fit:
    """The best-of-starts fit of FORM to the rows (X, y); with BOOTSTRAP > 0 also percentile 95 %
    intervals of every parameter and the replicate laws, and with JACKKNIFE > 0 that many
    delete-a-group refits (the boundary's BCa acceleration). INIT: {parameter: (lo, hi)} start
    ranges in the parameter's own units (laws/starts.py)."""
    cols, logy = _check(form, X, y)
    mdl = model(form, cols)
    points = start_points.starts(form, starts, seed, init)
    theta, obj, _ = _best(points, mdl, logy, np.ones(len(logy)))
    if not np.isfinite(obj):
        where = undefined_at(form, cols, form.to_values(points[0]))
        raise InputError(f"law {form.expression!r} cannot be evaluated at the data: "
                         + (where or "every start gives a non-positive prediction") +
                         "; expected a form defined (and > 0) at every row")
    law = Law(form, form.to_values(theta))
    if bootstrap <= 0:
        return Fit(law, obj, len(logy), form.inputs, None, None)
    ensemble = _bootstrap(form, theta, mdl, logy, bootstrap, np.random.default_rng(seed))
    laws = [Law(form, form.to_values(t)) for t in ensemble]
    jack = None
    if jackknife > 0:
        groups = jackknife_groups(len(logy), jackknife, seed)
        counts = (groups[None, :] != np.arange(groups.max() + 1)[:, None]).astype(float)
        refits = _refits(form, theta, mdl, logy, counts, np.random.default_rng([seed, 1]))
        jack = [Law(form, form.to_values(t)) for t in refits]
    return Fit(law, obj, len(logy), form.inputs, _intervals(ensemble, form), laws, jack)


def fit_law(X: Mapping[str, np.ndarray], y: np.ndarray, *, starts=None, bootstrap: int = 0,
            seed: int = 0, floor: bool = True) -> Fit:
    """The paper's form on the columns of X: y = E + sum_k coef_k x_k^-exponent_k; without
    FLOOR the law has no E (E = 0, not fitted, and no interval for it)."""
    if not X:
        raise InputError("no inputs: X must map at least one input name to its values")
    return fit_form(additive_form(list(X), floor), X, y, starts=starts, bootstrap=bootstrap,
                    seed=seed)


def _bootstrap(form: Form, theta, mdl, logy, b: int, rng) -> np.ndarray:
    """(b, p) optima of row-resampled refits, each the best of BOOT_STARTS warm starts."""
    n = len(logy)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
    return _refits(form, theta, mdl, logy, counts, rng)


def jackknife_groups(n: int, k: int, seed: int) -> np.ndarray:
    """(n,): the group (0 .. min(K, N) - 1) of each of N rows: a permutation seeded by SEED dealt
    round-robin, so groups differ in size by at most one row and each is spread over the design
    (a group of neighbouring rows, e.g. one Dp, would leave a term unidentified); the same rows
    and seed give the same groups."""
    k = min(k, n)
    return np.random.default_rng([seed, 0]).permutation(n) % k


def _refits(form: Form, theta, mdl, logy, counts, rng) -> np.ndarray:
    """(S, p) optima of the refits with row weights COUNTS (S, n), each the best of BOOT_STARTS
    warm starts: the full optimum and copies perturbed by RNG."""
    b, p = counts.shape[0], len(theta)
    jitter = np.array([BOOT_JITTER[form.roles[q]] for q in form.params])
    starts = theta + rng.normal(size=(b, BOOT_STARTS, p)) * jitter
    starts[:, 0] = theta
    refined, f = _lm_blocks(starts.reshape(-1, p), mdl, logy,
                            np.repeat(counts, BOOT_STARTS, axis=0), BOOT_ITERS)
    best = np.argmin(np.where(np.isfinite(f), f, np.inf).reshape(b, BOOT_STARTS), axis=1)
    winners = refined.reshape(b, BOOT_STARTS, p)[np.arange(b), best]
    winners, _ = _lm(winners, mdl, logy, counts, BOOT_REFINE, rtol=1e-12)
    return np.array([_polish(t, mdl, logy, c)[0] for t, c in zip(winners, counts)])


def _intervals(ensemble: np.ndarray, form: Form) -> dict[str, tuple[float, float]]:
    # An unconstrained coef's interval runs to inf: say so. numpy interpolating between two
    # infinite members computes inf - inf (a warning, and nan); the quantile is inf.
    with np.errstate(over="ignore", invalid="ignore"):
        cols = {q: np.exp(ensemble[:, j]) if form.is_log(q) else ensemble[:, j]
                for j, q in enumerate(form.params)}
        q = {key: np.percentile(v, TAILS) for key, v in cols.items()}
    return {key: tuple(float(x) for x in np.where(np.isnan(v), np.inf, v))
            for key, v in q.items()}


def percentile(values: list) -> list[float] | None:
    """[lo, hi] of the LEVEL percentile interval of VALUES, the Nones (members with no answer)
    left out; None when no value is left."""
    vals = [v for v in values if v is not None]
    return [float(q) for q in np.percentile(vals, TAILS)] if vals else None
