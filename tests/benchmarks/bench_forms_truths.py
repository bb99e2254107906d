"""Issue 35, known truths with interactions: does the comparison of candidate forms select the
truth's family, and do the selected forms' per-slice D**p intervals cover the true D**p?

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/bench_forms_truths.py
     --truth dp_x_df [--seeds 4] [--first 0] [--bootstrap 100]   (about 35 s a study, 2 cores)

Rows come from the simulate backend's own truth (`sweep.simulate.law_value`, the expression
language of the fitted laws) on a grid of 4 student sizes x 6 Dp (1k-1M images) x 4 Df x 2
replicates, 1 % log-normal noise, teachers of one size (so the teacher term is left out as a
single value). Each study offers the paper's form and the two interaction families for both
boundary laws, fits them as a sweep's `laws:` section would (laws.study.fit_law_forms: bootstrap,
checks, selection) and reads the boundary off the selected forms and off the paper's. Printed per
truth: how often each law selected the truth's family, and the share of slices (where the truths
cross inside the plausible range) whose 95 % D**p interval, read as the report reads it
(Slice.cross_interval: 0 / inf for an open end), holds the true D**p, for the selected forms and,
beside it, for the paper's; and how many studies have every slice covered; for each way of reading
the interval off the members (boundary.CROSS_INTERVALS: the percentile, the default; BCa; the
standard interval on the log scale), from the same fits.
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
from threadpoolctl import threadpool_limits

from raysweep.laws import boundary as bnd
from raysweep.laws import study
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS, PAPER
from raysweep.laws.law import Law
from raysweep.sweep import simulate

PARAMS = {2: 1.3e6, 4: 4.6e6, 6: 9.9e6, 8: 17.6e6}   # heads -> parameters
DPS, DFS = np.geomspace(1e3, 1e6, 6), (300, 1000, 3000, 10000)
TRUTHS = {  # family -> (plain truth, distilled truth)
    PAPER: ("0.10 + 3.0 / dp**0.3 + 6.0 / params**0.3 + 0.5 / df**0.3",
            "0.12 + 20.0 / dp**0.6 + 6.0 / params**0.3 + 0.5 / df**0.3"),
    "dp_x_df": ("0.10 + 3.0 * df**-0.15 / dp**0.3 + 6.0 / params**0.3 + 0.5 / df**0.3",
                "0.12 + 20.0 * df**-0.15 / dp**0.6 + 6.0 / params**0.3 + 0.5 / df**0.3"),
    "size_x_data": ("0.10 + 3.0 / dp**0.3 + 6.0 * dp**-0.08 / params**0.3 + 0.5 / df**0.3",
                    "0.12 + 20.0 / dp**0.6 + 6.0 * dp**-0.08 / params**0.3 + 0.5 / df**0.3"),
}
OFFERED = {name: {"dp_x_df": "E + A * df**kappa / dp**alpha + B / params**beta + C / df**gamma",
                  "size_x_data": "E + A / dp**alpha + B * dp**mu / params**beta + C / df**gamma"}
           for name in BOUNDARY_LAWS}


def rows_of(plain: str, distilled: str, seed: int, noise: float = 0.01) -> list[dict]:
    rng, rows = np.random.default_rng(seed), []
    for heads, dp, df, rep in itertools.product(PARAMS, DPS, DFS, (0, 1)):
        x = {"dp": dp, "params": PARAMS[heads], "df": df, "teacher_params": PARAMS[2]}
        base = {"downstream": "d", "heads": heads, "params": int(PARAMS[heads]), "dp": int(dp),
                "df": int(df), "seed": rep, "status": "ok", "trial_id": f"{heads}-{dp}-{df}-{rep}"}
        for stage, truth, teachers in (("finetune", plain, []), ("distill", distilled, [2])):
            y = simulate.law_value(truth, x) * math.exp(noise * rng.standard_normal())
            rows.append(base | {"stage": stage, "teacher_heads": teachers, "error": y,
                                "loss": y, "teacher_params": PARAMS[2] if teachers else None,
                                "trial_id": f"{stage}-{base['trial_id']}"})
    return rows


def study_once(family: str, seed: int, bootstrap: int) -> tuple[dict, dict[str, list[tuple]]]:
    """({law: selected form}, {interval rule: [(covered by selected, covered by paper)] per slice
    that crosses})."""
    rows = rows_of(*TRUTHS[family], seed)
    forms = study.candidate_forms(OFFERED)
    selected, fits, paper = {}, {}, {}
    default, bnd.CROSS_INTERVAL = bnd.CROSS_INTERVAL, "bca"   # fits carry the jackknife BCa reads
    for name in BOUNDARY_LAWS:
        mine = [r for r in rows if r["stage"] == LAWS[name].stage]
        entry, found = study.fit_law_forms(mine, name, forms[name], bootstrap, seed)
        selected[name] = entry.selected
        fits[name], paper[name] = found[entry.selected], found[PAPER]
    truth = [Law(simulate.truth(t), {}) for t in TRUTHS[family]]
    covered = {}
    for rule in bnd.CROSS_INTERVALS:
        bnd.CROSS_INTERVAL = rule
        covered[rule] = coverage(bnd.boundaries(rows, {"d": fits}, paper={"d": paper}), truth)
    bnd.CROSS_INTERVAL = default
    return selected, covered


def coverage(slices, truth: list[Law]) -> list[tuple]:
    """[(selected form's interval holds the true D**p, paper form's does)] per slice where the
    truths cross."""
    covered = []
    for s in slices:
        true_cross = bnd.d_cross(*truth, s.fixed_inputs(), s.dp_range)
        if true_cross is None:
            continue
        # the intervals as the report reads them: open ends are 0 / inf
        mine, theirs = s.cross_interval(), (s.paper or s).cross_interval()
        covered.append(tuple(bool(ci) and ci[0] <= true_cross <= ci[1] for ci in (mine, theirs)))
    return covered


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--truth", choices=sorted(TRUTHS), required=True)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--first", type=int, default=0, help="first seed (more studies, new seeds)")
    p.add_argument("--bootstrap", type=int, default=100)
    args = p.parse_args()
    hits = {name: 0 for name in BOUNDARY_LAWS}
    studies: dict[str, list] = {rule: [] for rule in bnd.CROSS_INTERVALS}
    with threadpool_limits(1, "blas"):
        for seed in range(args.first, args.first + args.seeds):
            selected, covered = study_once(args.truth, seed, args.bootstrap)
            hits = {k: hits[k] + (selected[k] == args.truth) for k in hits}
            said = "; ".join(f"{rule}: selected {sum(c[0] for c in cov)}, paper "
                             f"{sum(c[1] for c in cov)}" for rule, cov in covered.items())
            print(f"seed {seed}: selected {selected}; slices crossing "
                  f"{len(covered['bca'])}, covered {said}", flush=True)
            for rule, per_study in studies.items():
                per_study.append(covered[rule])
    print(f"truth {args.truth}: true family selected {hits} of {args.seeds} studies")
    for rule, per_study in studies.items():
        cover = [c for st in per_study for c in st]
        n = max(len(cover), 1)
        whole = [sum(all(c[i] for c in st) for st in per_study if st) for i in (0, 1)]
        print(f"{rule}: D**p 95 % coverage over {len(cover)} slices: selected "
              f"{sum(c[0] for c in cover) / n:.0%}, paper {sum(c[1] for c in cover) / n:.0%}; "
              f"studies with every slice covered: selected {whole[0]}, paper {whole[1]} of "
              f"{sum(bool(st) for st in per_study)} (a study's slices share one noise draw, and "
              f"here one true D**p: studies are the independent units)")


if __name__ == "__main__":
    main()
