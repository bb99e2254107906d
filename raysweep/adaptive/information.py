"""The linearised information the design rule ranks options by: per downstream set, the inverse
information of each boundary law at its fit, and the gradient of every chased slice's log D**p.

At a fit theta (the selected form's own coordinates, laws/form.py: log E, log coef_k, exponent_k
for the paper's) the delta method gives each slice's

    Var(log D**p) ~ g_p^T (J_p^T J_p)^-1 g_p + g_d^T (J_d^T J_d)^-1 g_d

J: d log(law) / d theta at every row the law was fitted on; g: d log D**p / d theta, by the
implicit function theorem at the root of F = E_plain - E_distilled. New rows lower it by a rank-k
update (Woodbury), exact for every set of rows: `Laws.drop`. The noise level scales every drop
alike and is left out. With `calibrate`, each slice's gradient is scaled so that its variance is
the one its bootstrap interval says (`calibration`), and a drop is read in those units.
adaptive/design.py builds one `Laws` at the point fit and one at each bootstrap member it reads,
from the same functions.
"""

from __future__ import annotations

import math

import numpy as np

from raysweep.laws import boundary as bnd
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS
from raysweep.laws.law import Fit
from raysweep.laws.slices import Slice
from raysweep.sweep import plan

LAW_OF_STAGE = {LAWS[name].stage: name for name in BOUNDARY_LAWS}   # finetune / distill -> law


def log_jacobian(f: Fit, xs: list[dict]) -> np.ndarray:
    """(rows, parameters): d log(law) / d theta at each row, theta the form's own fit
    coordinates (log of a floor or coefficient, an exponent as itself; laws/form.py): for the
    paper's form (log E, log coef_1..k, exponent_1..k), and no log E where it has no floor."""
    X = {k: np.array([x[k] for x in xs], dtype=float) for k in f.form.inputs}
    return f.form.log_jacobian(X, f.law.values)


def cross_gradient(fits: dict, fixed: dict, dp_range=(1e3, 1e8)
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """d log D**p / d theta of the plain and of the distilled law, for the slice whose other
    inputs are FIXED; None where the laws do not cross in DP_RANGE (images)."""
    plain, dist = fits["error"], fits["distilled_error"]
    root = bnd.d_cross(plain.law, dist.law, fixed, dp_range)
    if root is None:
        return None
    h = 1e-4
    slope = (bnd.advantage(plain.law, dist.law, fixed, root * math.exp(h))
             - bnd.advantage(plain.law, dist.law, fixed, root * math.exp(-h))) / (2 * h)
    at = fixed | {"dp": root}
    dy = [f.law.predict({k: at[k] for k in f.form.inputs}) * log_jacobian(f, [at])[0]
          for f in (plain, dist)]
    return -dy[0] / slope, dy[1] / slope


class Laws:
    """One downstream set: its fits, the inverse information of each law, the chased slices'
    gradients."""

    def __init__(self, fits: dict, rows: list[dict], targets: list[Slice],
                 calibrate: bool = False):
        self.fits = fits
        self.inv = {}
        for name in BOUNDARY_LAWS:
            stage, target = LAWS[name].stage, LAWS[name].target
            xs = [r for r in rows if r["stage"] == stage and (r[target] or 0) > 0
                  and all(r.get(k) is not None for k in fits[name].form.inputs)]
            J = log_jacobian(fits[name], xs)
            self.inv[name] = np.linalg.pinv(J.T @ J)
        found = [(s, cross_gradient(fits, s.fixed_inputs(), s.dp_range)) for s in targets]
        found = [(s, g) for s, g in found if g is not None]
        if calibrate:   # each slice's gradient scaled so its variance is the bootstrap's
            found = [(s, tuple(math.sqrt(w) * gi for gi in g)) for s, g in found
                     if (w := calibration(s, self.variance(g)))]
        self.grads = {name: np.array([g[i] for _, g in found])
                      for i, name in enumerate(BOUNDARY_LAWS)}

    def variance(self, g: tuple[np.ndarray, np.ndarray]) -> float:
        """The delta method's Var(log D**p) of a slice with gradients G (plain, distilled)."""
        return float(sum(gi @ self.inv[name] @ gi for gi, name in zip(g, BOUNDARY_LAWS)))

    def jacobians(self, xs: dict[str, list[dict]]) -> dict[str, np.ndarray]:
        """Law -> the rows of J at the law inputs XS[law]."""
        return {name: log_jacobian(self.fits[name], rows) for name, rows in xs.items() if rows}

    def _update(self, name: str, J: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A J^T, (I + J A J^T)^-1 J A) for new rows J of law NAME: A - (A J^T)(that) is the
        inverse information with them."""
        AJ = self.inv[name] @ J.T
        return AJ, np.linalg.solve(np.eye(len(J)) + J @ AJ, AJ.T)

    def drop(self, js: dict[str, np.ndarray]) -> float:
        """What adding the rows JS (law -> rows of J) takes off the summed variance."""
        total = 0.0
        for name, J in js.items():
            G = self.grads[name]
            if len(J) and G.size:
                AJ, S = self._update(name, J)
                total += float(np.einsum("gp,gp->", G @ AJ, (S @ G.T).T))
        return total

    def add(self, js: dict[str, np.ndarray]) -> None:
        for name, J in js.items():
            if len(J):
                AJ, S = self._update(name, J)
                self.inv[name] = self.inv[name] - AJ @ S


def calibration(s: Slice, linear: float) -> float:
    """How far the delta method's Var(log D**p), LINEAR, understates slice S's as its bootstrap
    reads it: ((log hi - log lo) / 3.92)^2 over LINEAR (a 95 % interval spans 2 x 1.96 sd of a
    normal log D**p), an open end taken at the edge of the slice's plausible range. The rule
    ranks options by the drop of the linearised variance, which far from the data can rate a
    slice the bootstrap cannot bound as nearly settled; scaled so, a drop is read in the
    bootstrap's units, where the loop judges a slice. 1 (uncalibrated) without an interval (no
    bootstrap), a plausible range or a positive LINEAR; 0 for an interval of no width."""
    ci = s.cross_interval()
    if ci is None or s.dp_range is None or not linear > 0:
        return 1.0
    lo, hi = (ci[0] if ci[0] > 0 else s.dp_range[0]), min(ci[1], s.dp_range[1])
    return (math.log(hi / lo) / 3.92) ** 2 / linear if 0 < lo < hi < math.inf else 0.0


def trial_jacobians(laws: dict, trials: dict[str, plan.Trial]) -> dict[str, tuple]:
    """Trial id -> (its law, its row of J) for every fine-tune and distillation of TRIALS on a
    downstream set in LAWS: computed once a round, in one call per law."""
    by_law: dict[tuple, list[plan.Trial]] = {}
    for t in trials.values():
        ds = (t.config.get("downstream") or {}).get("name")
        if t.stage in LAW_OF_STAGE and ds in laws:
            by_law.setdefault((ds, LAW_OF_STAGE[t.stage]), []).append(t)
    out = {}
    for (ds, name), ts in by_law.items():
        J = laws[ds].jacobians({name: law_rows(ts)[name]})[name]
        out |= {t.trial_id: (name, j) for t, j in zip(ts, J)}
    return out


def stack(jac: dict[str, tuple], trials: list[plan.Trial]) -> dict[str, np.ndarray]:
    """Law -> the rows of J that TRIALS add to it."""
    rows: dict[str, list] = {name: [] for name in BOUNDARY_LAWS}
    for t in trials:
        if t.trial_id in jac:
            name, j = jac[t.trial_id]
            rows[name].append(j)
    return {name: np.array(js) for name, js in rows.items() if js}


def law_rows(trials: list[plan.Trial]) -> dict[str, list[dict]]:
    """Law -> the rows TRIALS would add to it (their law inputs)."""
    out: dict[str, list[dict]] = {name: [] for name in BOUNDARY_LAWS}
    for t in trials:
        if t.stage in LAW_OF_STAGE:
            c = t.config
            out[LAW_OF_STAGE[t.stage]].append({"dp": c["dp"], "params": t.params, "df": c["df"],
                                               "teacher_params": t.teacher_params})
    return out
