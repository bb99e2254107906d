"""Issue 35, why BCa moves a slice's D**p interval where it does: per slice of one study, the true
D**p, the point fit's, the percentile and BCa intervals, z0 and the acceleration a.

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/probe_cross_bca.py
     --truth paper --seed 0 [--bootstrap 100]      (about a minute a study, 2 cores)
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=100)
    args = p.parse_args()
    rows = rows_of(*TRUTHS[args.truth], args.seed)
    forms = study.candidate_forms(OFFERED)
    fits = {}
    with threadpool_limits(1, "blas"):
        for name in BOUNDARY_LAWS:
            mine = [r for r in rows if r["stage"] == LAWS[name].stage]
            _, found = study.fit_law_forms(mine, name, {args.truth: forms[name][args.truth]},
                                           args.bootstrap, args.seed)
            fits[name] = found[args.truth]
    truth = [Law(simulate.truth(t), {}) for t in TRUTHS[args.truth]]
    plain, distilled = fits["error"], fits["distilled_error"]
    for s in bnd.boundaries(rows, {"d": fits}):
        fixed, rng = s.fixed_inputs(), s.dp_range
        true = bnd.d_cross(*truth, fixed, rng)
        pair = plain.ensemble, distilled.ensemble
        crosses = intervals.beyond_range(bnd.crossings(*pair, fixed, rng), bnd._top(pair, fixed, rng))
        jack = bnd._jackknife_crosses(plain, distilled, fixed, rng)
        z0, a = intervals.bias_z0(crosses, s.d_cross or np.nan), intervals.acceleration(jack)
        pct = intervals.open_percentile(crosses)
        bca = intervals.bca_interval(crosses, s.d_cross or np.nan, jack)
        print(f"{s.student_heads}h Df {s.df}: true {true:.3g} point {s.d_cross:.3g} "
              f"pct [{pct[0]:.3g}, {pct[1]:.3g}] bca [{bca[0]:.3g}, {bca[1]:.3g}] "
              f"z0 {z0:.2f} a {a:.3f} members' median {np.median(crosses):.3g}", flush=True)


if __name__ == "__main__":
    main()
