"""A form on a table's rows, as the fitter sees it: log y_pred and its Jacobian for a batch of S
parameter vectors at once, in the form's fit coordinates (log of a floor or coefficient, an
exponent as itself).

Two kinds, one interface (`value(theta) -> (log y (S, n), state)`, `jacobian(theta, state) -> (S,
p, n)`):
- `PowerSumModel`, for a constant plus terms coef * prod x_i^(+-exponent): in log space each term
  is linear in the coordinates, log t_j = a_j + sum_m theta_m F_jm with F_jm fixed features of the
  rows (sums of +-log x), so log y is a logsumexp and its Jacobian is the softmax weights times the
  features -- a few array operations a step, whatever S;
- `TreeModel`, for any other form: the tree evaluated by forward-mode differentiation
  (form.Form.evaluate) with the parameters broadcast as (S, 1) columns; slower per step, same
  objective and same fitter.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from raysweep.laws.form import Form


def model(form: Form, X: Mapping[str, np.ndarray]):
    return PowerSumModel(form, X) if form.power_sum else TreeModel(form, X)


class PowerSumModel:
    def __init__(self, form: Form, X: Mapping[str, np.ndarray]):
        ps, index = form.power_sum, {p: i for i, p in enumerate(form.params)}
        logx = {k: np.log(np.asarray(X[k], dtype=float)) for k in form.inputs}
        n = len(next(iter(logx.values())))
        self.floor = index[ps.floor] if ps.floor else None
        self.coef = [index[t.coef] for t in ps.terms]
        self.pairs = []      # per term: [(exponent's index, feature (n,))]
        self.offset = []     # per term: the fixed exponents' part (n,), or None
        for t in ps.terms:
            pairs, offset = [], np.zeros(n)
            for p in t.powers:
                feature = sum(s * logx[k] for k, s in p.inputs)
                if isinstance(p.exponent, str):
                    pairs.append((index[p.exponent], feature))
                else:
                    offset = offset + p.exponent * feature
            self.pairs.append(pairs)
            self.offset.append(offset if np.any(offset) else None)
        self.p, self.n = len(form.params), n

    def value(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log y_pred (S, n), softmax weights over the summands (K, S, n))."""
        first = int(self.floor is not None)
        t = np.empty((first + len(self.coef), theta.shape[0], self.n))  # summand-major: contiguous
        if first:
            t[0] = theta[:, self.floor, None]
        for j, (a, pairs, off) in enumerate(zip(self.coef, self.pairs, self.offset)):
            row = t[first + j]
            if pairs:   # in place: this runs for every start at every step
                np.multiply(theta[:, pairs[0][0], None], pairs[0][1], out=row)
                row += theta[:, a, None]
            else:
                row[:] = theta[:, a, None]
            for m, feature in pairs[1:]:
                row += theta[:, m, None] * feature
            if off is not None:
                row += off
        top = t.max(axis=0)
        t -= top
        np.exp(t, out=t)
        total = t.sum(axis=0)
        t /= total
        return top + np.log(total), t

    def jacobian(self, theta: np.ndarray, w: np.ndarray) -> np.ndarray:
        """d log y_pred / d theta, (S, p, n): a summand's weight for its floor or coefficient,
        the weighted features for an exponent (summed over the terms that share it)."""
        first = int(self.floor is not None)
        jac = np.zeros((w.shape[1], self.p, w.shape[2]))
        if first:
            jac[:, self.floor] = w[0]
        for j, (a, pairs) in enumerate(zip(self.coef, self.pairs)):
            jac[:, a] = w[first + j]
            for m, feature in pairs:
                jac[:, m] += w[first + j] * feature
        return jac


class TreeModel:
    def __init__(self, form: Form, X: Mapping[str, np.ndarray]):
        self.form = form
        self.X = {k: np.asarray(X[k], dtype=float) for k in form.inputs}
        self.p = len(form.params)

    def _values(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(over="ignore"):
            return {p: (np.exp(theta[:, i, None]) if self.form.is_log(p) else theta[:, i, None])
                    for i, p in enumerate(self.form.params)}

    def value(self, theta: np.ndarray) -> tuple[np.ndarray, None]:
        y, _ = self.form.evaluate(self.X, self._values(theta))
        with np.errstate(all="ignore"):   # y <= 0 has no log: nan, a step the fitter rejects
            logy = np.log(np.where(y > 0, y, np.nan))
        return np.broadcast_to(logy, (theta.shape[0], logy.shape[-1])).copy(), None

    def jacobian(self, theta: np.ndarray, _state=None) -> np.ndarray:
        values = self._values(theta)
        y, grads = self.form.evaluate(self.X, values, self.form.params)
        shape = (theta.shape[0], np.shape(y)[-1])
        with np.errstate(all="ignore"):
            cols = [np.broadcast_to(grads.get(p, 0.0) * (values[p] if self.form.is_log(p)
                                                          else 1.0) / y, shape)
                    for p in self.form.params]
        jac = np.stack(cols, axis=1)
        return np.where(np.isfinite(jac), jac, 0.0)
