"""Issue 35, external truth: published scaling-law forms that are not an additive sum, fitted to
the Chinchilla data (Hoffmann et al. 2022, as extracted by Besiroglu et al. 2024; tests/data).

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/bench_forms_external.py
     (about 2-4 minutes, 2 cores)

Per form: raysweep's in-sample objective (summed Huber loss, delta 1e-3, on log residuals) against
an independent fit of the same expression -- scipy's L-BFGS-B with numeric gradients from 200
random starts in the same boxes, the expression written out in numpy here, not parsed -- and the
held-out error: fitted on the rows below the largest compute, MAPE on the 10 % of rows with the
largest compute (6 N D). Forms:
- paper: E + A / N**a + B / D**b (Hoffmann et al.'s approach 3, the additive sum);
- kaplan: ((Nc / N)**(aN / aD) + Dc / D)**aD (Kaplan et al. 2020, eq. 1.5, not additive);
- kaplan_floor: E + ((Nc / N)**(aN / aD) + Dc / D)**aD (the same with an irreducible loss).
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np
from scipy import optimize

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))   # tests/, for the data

import test_laws as known

from raysweep.laws import candidates
from raysweep.laws.entries import LawEntry
from raysweep.laws.fitting import DELTA, fit_form
from raysweep.laws.form import parse

FORMS = {  # name -> (expression, its numpy twin over log-parametrised theta, start boxes, init)
    "paper": ("E + A / N**a + B / D**b",
              lambda t, N, D: np.exp(t[0]) + np.exp(t[1]) / N ** t[3] + np.exp(t[2]) / D ** t[4],
              [(-1, 1), (0, 25), (0, 25), (0, 2), (0, 2)], {}),
    "kaplan": ("((Nc / N)**(aN / aD) + Dc / D)**aD",
               lambda t, N, D: ((np.exp(t[0]) / N) ** (t[2] / t[3]) + np.exp(t[1]) / D) ** t[3],
               [(np.log(1e10), np.log(1e16))] * 2 + [(0, 1), (0, 1)],
               {"Nc": (1e10, 1e16), "Dc": (1e10, 1e16), "aN": (0.0, 1.0), "aD": (0.0, 1.0)}),
    "kaplan_floor": ("E + ((Nc / N)**(aN / aD) + Dc / D)**aD",
                     lambda t, N, D: np.exp(t[0]) + ((np.exp(t[1]) / N) ** (t[3] / t[4])
                                                     + np.exp(t[2]) / D) ** t[4],
                     [(-1, 1)] + [(np.log(1e10), np.log(1e16))] * 2 + [(0, 1), (0, 1)],
                     {"Nc": (1e10, 1e16), "Dc": (1e10, 1e16), "aN": (0.0, 1.0),
                      "aD": (0.0, 1.0)}),
}


def huber_objective(pred, y) -> float:
    r = np.log(pred) - np.log(y)
    a = np.abs(r)
    return float(np.sum(np.where(a <= DELTA, 0.5 * r * r, DELTA * (a - 0.5 * DELTA))))


def scipy_fit(twin, boxes, X, y, starts=200, seed=0) -> float:
    """The best objective of L-BFGS-B (numeric gradients) from STARTS uniform random starts."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array(boxes, dtype=float).T

    def f(t):
        with np.errstate(all="ignore"):
            v = huber_objective(twin(t, X["N"], X["D"]), y)
        return v / DELTA if np.isfinite(v) else 1e12

    best = np.inf
    for s in lo + rng.uniform(size=(starts, len(lo))) * (hi - lo):
        res = optimize.minimize(f, s, method="L-BFGS-B", options={"maxiter": 2000})
        best = min(best, res.fun * DELTA)
    return best


def main() -> None:
    X, y = known.chinchilla()
    compute = 6 * X["N"] * X["D"]
    held = compute >= np.quantile(compute, 0.9)
    entries = {}
    for name, (expression, twin, boxes, init) in FORMS.items():
        form = parse(expression, ["N", "D"])
        t = time.perf_counter()
        fit = fit_form(form, X, y, init=init)
        ours = time.perf_counter() - t
        t = time.perf_counter()
        theirs = scipy_fit(twin, boxes, X, y)
        scipy_s = time.perf_counter() - t
        part = fit_form(form, {k: v[~held] for k, v in X.items()}, y[~held], init=init)
        pred = part.law.predict({k: v[held] for k, v in X.items()})
        mape = float(np.mean(np.abs(pred - y[held]) / y[held]))
        entries[name] = LawEntry(status="ok", bic=candidates.bic(fit, X, y),
                                 extrapolation={"compute": {"mape": mape}})
        print(f"{name}: raysweep objective {fit.objective:.8g} ({ours:.1f} s), scipy 200 starts "
              f"{theirs:.8g} ({scipy_s:.1f} s), ratio {fit.objective / theirs:.6f}; held-out "
              f"largest-compute 10 % ({held.sum()} rows) MAPE {100 * mape:.2f} %; "
              f"params {', '.join(f'{k}={v:.4g}' for k, v in fit.law.values.items())}")
    print("selected (laws/candidates.py rule):", candidates.select(entries))


if __name__ == "__main__":
    main()
