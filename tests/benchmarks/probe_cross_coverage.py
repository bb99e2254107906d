"""Issue 35, why D**p intervals under-cover on known truths: dump every bootstrap member's
crossing, for two resampling schemes, so interval rules can be compared offline.

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/probe_cross_coverage.py
     --truth size_x_data --seeds 6 --out /tmp/cover_size_x_data.json   (~1.5 min a study)

Per study (bench_forms_truths's rows and truths), both boundary laws are fitted in the truth's
family and in the paper's form, each with a pairs bootstrap (rows resampled: the library's) and a
residual bootstrap (log residuals of the point fit resampled onto its predictions: the design
held fixed). Per slice where the truths cross, the JSON holds the true D**p, the point fit's,
every member's crossing (null where it has none) and the sign of each member's F at the top of
the plausible range: the raw material of any percentile rule.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from bench_forms_truths import OFFERED, TRUTHS, rows_of
from threadpoolctl import threadpool_limits

from raysweep.laws import boundary as bnd
from raysweep.laws import fitting, study
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS, PAPER
from raysweep.laws.law import Law
from raysweep.sweep import simulate

PAIRS = fitting._bootstrap


def residual_bootstrap(form, theta, mdl, logy, b, rng):
    """(b, p) optima of refits to the point fit's log predictions plus resampled log residuals."""
    n, p = len(logy), len(theta)
    fitted = mdl.value(theta[None])[0][0]
    resid = logy - fitted
    ystar = fitted + rng.choice(resid - resid.mean(), size=(b, n))
    ones = np.ones((b, n))
    jitter = np.array([fitting.BOOT_JITTER[form.roles[q]] for q in form.params])
    starts = theta + rng.normal(size=(b, fitting.BOOT_STARTS, p)) * jitter
    starts[:, 0] = theta
    rep = np.repeat(ystar, fitting.BOOT_STARTS, axis=0)
    refined, f = fitting._lm(starts.reshape(-1, p), mdl, rep, np.repeat(ones, fitting.BOOT_STARTS,
                                                                      axis=0), fitting.BOOT_ITERS)
    best = np.argmin(np.where(np.isfinite(f), f, np.inf).reshape(b, fitting.BOOT_STARTS), axis=1)
    winners = refined.reshape(b, fitting.BOOT_STARTS, p)[np.arange(b), best]
    winners, _ = fitting._lm(winners, mdl, ystar, ones, fitting.BOOT_REFINE, rtol=1e-12)
    return np.array([fitting._polish(t, mdl, y, np.ones(n))[0] for t, y in zip(winners, ystar)])


def fits_of(rows, family, method, bootstrap, seed):
    fitting._bootstrap = PAIRS if method == "pairs" else residual_bootstrap
    forms = study.candidate_forms(OFFERED)
    out = {}
    for form_name in {family, PAPER}:
        out[form_name] = {}
        for name in BOUNDARY_LAWS:
            mine = [r for r in rows if r["stage"] == LAWS[name].stage]
            out[form_name][name] = study.fit_rows(mine, LAWS[name].target, forms[name][form_name],
                                                  bootstrap, seed, extrapolate=False)[1]
    return out


def members(fits, s):
    plain, dist = fits["error"], fits["distilled_error"]
    k = min(len(plain.ensemble), len(dist.ensemble))
    pair = plain.ensemble[:k], dist.ensemble[:k]
    fixed, dp_range = s.fixed_inputs(), s.dp_range
    cross = bnd.crossings(*pair, fixed, dp_range)
    top = bnd._batch_advantage(*pair, fixed, np.log(np.array([[dp_range[1]]] * k)))[:, 0]
    bottom = bnd._batch_advantage(*pair, fixed, np.log(np.array([[dp_range[0]]] * k)))[:, 0]
    point = bnd.d_cross(plain.law, dist.law, fixed, dp_range)
    return {"point": point, "cross": [None if np.isnan(c) else float(c) for c in cross],
            "top": [None if np.isnan(v) else float(v) for v in top],
            "bottom": [None if np.isnan(v) else float(v) for v in bottom]}


def study_once(family, seed, bootstrap):
    rows = rows_of(*TRUTHS[family], seed)
    truth = [Law(simulate.truth(t), {}) for t in TRUTHS[family]]
    found = {m: fits_of(rows, family, m, bootstrap, seed) for m in ("pairs", "residuals")}
    base = found["pairs"][PAPER]
    out = []
    for s in bnd.boundaries(rows, {"d": base}):
        if s.dp_range is None:
            continue
        true_cross = bnd.d_cross(*truth, s.fixed_inputs(), s.dp_range)
        if true_cross is None:
            continue
        one = {"seed": seed, "student": s.student_heads, "df": s.df, "true": true_cross,
               "dp_range": s.dp_range, "measured": [1e3, 1e6]}
        for m, by_form in found.items():
            for form_name, fits in by_form.items():
                one[f"{m}/{'family' if form_name == family else 'paper'}"] = members(fits, s)
        out.append(one)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--truth", choices=sorted(TRUTHS), required=True)
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    found = []
    with threadpool_limits(1, "blas"):
        for seed in range(args.first, args.first + args.seeds):
            found += study_once(args.truth, seed, args.bootstrap)
            print(f"seed {seed}: {len(found)} slices so far", flush=True)
            with open(args.out, "w") as f:
                json.dump(found, f)


if __name__ == "__main__":
    main()
