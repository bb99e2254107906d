"""The design rule: the pairs that would shrink the boundary's intervals most per trial they add.

A sequential, locally optimal design (Chernoff 1953; Box & Lucas 1959) for the D**p of every
chased slice. At the current fit the delta method gives each slice's

    Var(log D**p) ~ g_p^T (J_p^T J_p)^-1 g_p + g_d^T (J_d^T J_d)^-1 g_d

J: d log(law) / d theta at every row the law was fitted on, theta the fit's own parameters (log E,
log coef_k, exponent_k); g: d log D**p / d theta, by the implicit function theorem at the root of
F = E_plain - E_distilled. A pair at Dp adds one row per seed to each law, so what it would take
off the summed variance of the chased slices is a rank-one update (Sherman-Morrison), exact for
every candidate. Pairs are picked greedily by that drop per trial the pair adds: its fine-tune and
distillation, plus the pretrainings of its student and teachers not yet run or picked at that Dp.
The matrices are updated after each pick. The noise level scales every drop alike, so the rule
needs no estimate of it.

Why it is not the crossing rule (raysweep.adaptive.proposals): D**p comes from parameters every
slice shares. A pair informs all slices of its downstream set, not only its own, and a pair next to
one that shares its pretrainings costs two trials instead of four to six. How the two compare is
measured in BENCHMARKS.md, "Adaptive sampling".
Left out: the ensemble. The rule is first-order around the point fit, so while the fit is poor
(a start grid of two Dp values) its ranking is as poor; the bootstrap still decides when to stop.
Averaging the drops over bootstrap fits as well was measured and did not help (BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from raysweep.adaptive import proposals
from raysweep.adaptive.choice import (
    Situation,
    advantage_samples,
    replicate_seeds,
    replicates,
)
from raysweep.laws import boundary as bnd
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS
from raysweep.laws.fitting import Fit

CANDIDATES = 40   # log-spaced Dp values over the sweep's range, per slice
REASON = "largest expected drop of the D**p intervals per trial"


def log_jacobian(f: Fit, xs: list[dict]) -> np.ndarray:
    """(rows, 1 + 2k): d log(law) / d (log E, log coef_1..k, exponent_1..k) at each row."""
    X = {k: np.array([x[k] for x in xs], dtype=float) for k in f.inputs}
    y = f.law.predict(X)
    terms = [f.law.terms[k][0] * X[k] ** -f.law.terms[k][1] for k in f.inputs]
    return np.column_stack([np.full_like(y, f.law.E)] + terms
                           + [-t * np.log(X[k]) for t, k in zip(terms, f.inputs)]) / y[:, None]


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
    dy = [f.law.predict({k: at[k] for k in f.inputs}) * log_jacobian(f, [at])[0]
          for f in (plain, dist)]
    return -dy[0] / slope, dy[1] / slope


class _Laws:
    """One downstream set: its fits, the inverse information of each law, the chased slices'
    gradients."""

    def __init__(self, fits: dict, rows: list[dict], targets: list[dict]):
        self.fits = fits
        self.inv = {}
        for name in BOUNDARY_LAWS:
            stage, target, _, _ = LAWS[name]
            xs = [r for r in rows if r["stage"] == stage and (r[target] or 0) > 0]
            J = log_jacobian(fits[name], xs)
            self.inv[name] = np.linalg.pinv(J.T @ J)
        self.grads = [g for g in (cross_gradient(fits, bnd.fixed_inputs(s), s["dp_range"])
                                  for s in targets) if g is not None]

    def drops(self, xs: list[dict], copies: int) -> np.ndarray:
        """What a pair at each of XS (COPIES rows per law) takes off the summed variance."""
        out = np.zeros(len(xs))
        for i, name in enumerate(BOUNDARY_LAWS):
            J = log_jacobian(self.fits[name], xs)
            AJ = J @ self.inv[name]
            lev = copies * np.einsum("cp,cp->c", AJ, J)
            for g in self.grads:
                out += copies * (AJ @ g[i]) ** 2 / (1 + lev)
        return out

    def add(self, x: dict, copies: int) -> None:
        for name in BOUNDARY_LAWS:
            j = log_jacobian(self.fits[name], [x])[0]
            Aj = self.inv[name] @ j
            self.inv[name] = self.inv[name] - copies * np.outer(Aj, Aj) / (1 + copies * j @ Aj)


def design_rule(sit: Situation) -> list[proposals.Candidate]:
    """SIT.BATCH pairs, greedily, by expected drop of the chased slices' Var(log D**p) per trial."""
    dps = proposals.candidate_dps(*sit.dp_range, CANDIDATES)
    copies = len(sit.sweep.seeds)
    laws = {ds: _Laws(sit.fits[ds], [r for r in sit.rows if r["downstream"] == ds],
                      [s for s in sit.targets if s["downstream"] == ds])
            for ds in {s["downstream"] for s in sit.targets}}
    options = []   # per chased slice: its candidates, fixed for the round; only drops change
    for s in sit.targets:
        key = bnd.slice_key(s)
        p = proposals.winning_share(advantage_samples(sit.fits[s["downstream"]], s, dps))
        p = np.full(len(dps), math.nan) if p is None else p  # reported, not ranked by
        found = [replicates([proposals.Candidate(key, int(d), 0.0, float(q), REASON)],
                            sit.measured.get(key, []), copies)[0] for d, q in zip(dps, p)]
        options.append((laws[s["downstream"]], (s["student_heads"], *s["teacher_heads"]),
                        [bnd.fixed_inputs(s) | {"dp": float(d)} for d in dps], found))
    ran = {(r["heads"], r["dp"], r["seed"]) for r in sit.rows if r["stage"] == "pretrain"}
    picked: list[proposals.Candidate] = []
    while len(picked) < sit.batch:
        best = None
        for slice_laws, heads, xs, found in options:
            for c, x, drop in zip(found, xs, slice_laws.drops(xs, copies)):
                if any((o.slice_key, o.dp, o.replicate) == (c.slice_key, c.dp, c.replicate)
                       for o in picked):
                    continue
                seeds = replicate_seeds(sit.sweep, c.replicate)
                cost = 2 * copies + len({(h, c.dp, n) for h in heads for n in seeds} - ran)
                if best is None or drop / cost > best[0]:
                    best = (drop / cost, c, x, seeds, heads)
        if best is None or not best[0] > 0:
            break
        score, c, x, seeds, heads = best
        picked.append(dataclasses.replace(c, score=float(score)))
        laws[c.slice_key[0]].add(x | {"dp": float(c.dp)}, copies)
        ran |= {(h, c.dp, n) for h in heads for n in seeds}
    return picked
