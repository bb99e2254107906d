"""Issue 35, why BCa moves a slice's D**p interval where it does: per study (the truth's family
fitted to both laws, as bench_forms_truths's rows), the point fit's error in log D**p, BC's z0 and
the jackknife's acceleration a over the slices, and which way BC moves the interval: towards the
truth where z0 and the error have opposite signs (z0 < 0: the members sit above the point fit, so
BC reads the estimate as high and moves the interval down). --slices prints every slice.

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/probe_cross_bca.py
     --truth paper --seeds 0 1 2 [--bootstrap 100] [--slices]     (about 40 s a study, 2 cores)
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_forms_truths import OFFERED, TRUTHS, rows_of
from threadpoolctl import threadpool_limits

from raysweep.laws import boundary as bnd
from raysweep.laws import intervals, study
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS
from raysweep.laws.law import Law
from raysweep.sweep import simulate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--truth", choices=sorted(TRUTHS), required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--slices", action="store_true")
    args = p.parse_args()
    for seed in args.seeds:
        one_study(args, seed)


def one_study(args, seed: int) -> None:
    rows = rows_of(*TRUTHS[args.truth], seed)
    forms = study.candidate_forms(OFFERED)
    fits = {}
    with threadpool_limits(1, "blas"):
        for name in BOUNDARY_LAWS:
            mine = [r for r in rows if r["stage"] == LAWS[name].stage]
            _, found = study.fit_law_forms(mine, name, {args.truth: forms[name][args.truth]},
                                           args.bootstrap, seed)
            fits[name] = found[args.truth]
    truth = [Law(simulate.truth(t), {}) for t in TRUTHS[args.truth]]
    plain, distilled = fits["error"], fits["distilled_error"]
    said = []
    for s in bnd.boundaries(rows, {"d": fits}):
        fixed, rng = s.fixed_inputs(), s.dp_range
        true = bnd.d_cross(*truth, fixed, rng)
        pair = plain.ensemble, distilled.ensemble
        crosses = intervals.beyond_range(bnd.crossings(*pair, fixed, rng), bnd._top(pair, fixed, rng))
        jack = bnd._jackknife_crosses(plain, distilled, fixed, rng)
        z0, a = intervals.bias_z0(crosses, s.d_cross or np.nan), intervals.acceleration(jack)
        pct = intervals.open_percentile(crosses)
        bca = intervals.bca_interval(crosses, s.d_cross or np.nan, jack)
        said.append((np.log(s.d_cross / true), z0, a))
        if args.slices:
            print(f"{s.student_heads}h Df {s.df}: true {true:.3g} point {s.d_cross:.3g} "
                  f"pct [{pct[0]:.3g}, {pct[1]:.3g}] bca [{bca[0]:.3g}, {bca[1]:.3g}] "
                  f"z0 {z0:.2f} a {a:.3f} members' median {np.median(crosses):.3g}", flush=True)
    err, z0, a = (np.array(v, dtype=float) for v in zip(*said))
    towards = np.mean(np.sign(z0) == -np.sign(err))
    print(f"seed {seed}: log(point / truth) {np.median(err):+.2f}, z0 {np.median(z0):+.2f} "
          f"({z0.min():+.2f} to {z0.max():+.2f}), a {np.median(a):+.3f} ({a.min():+.3f} to "
          f"{a.max():+.3f}); BC moves towards the truth in {towards:.0%} of "
          f"{len(said)} slices", flush=True)


if __name__ == "__main__":
    main()
