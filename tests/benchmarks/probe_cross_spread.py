"""Issue 35: is the D**p bootstrap as wide as D**p's real scatter? Point fits of the truth's family
on many simulated studies give the sampling spread of log D**p per slice; probe_cross_coverage.py's
ensembles give the bootstrap's. Also summarises those ensembles' coverage under each reading.

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/probe_cross_spread.py
     --truth paper --studies 40 --first 100 --out /tmp/spread_paper.json    (~1.5 s a study)
then: .venv/bin/python tests/benchmarks/probe_cross_spread.py --truth paper
     --spread /tmp/spread_paper.json --ensembles /tmp/cover_paper_*.json     (no fitting)

Printed per slice: the sd of log D**p over the studies' point fits, the mean sd of log D**p over
each ensemble's members, their ratio, and the share of the point fits within 1.96 bootstrap sd of
the true D**p; per scheme (pairs / residuals) and form (family / paper): the share of slices whose
members' percentile interval holds the truth, over the crossing members only ("members") and
with members that do not cross placed at 0 / inf (laws/intervals.py, "open").
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from bench_forms_truths import OFFERED, TRUTHS, rows_of
from scipy import stats
from threadpoolctl import threadpool_limits

from raysweep.laws import boundary as bnd
from raysweep.laws import study
from raysweep.laws.catalogue import BOUNDARY_LAWS, LAWS
from raysweep.laws.intervals import beyond_range, open_percentile


def point_crossings(family: str, studies: int, first: int) -> list[dict]:
    """Per study, slice ('heads/Df') -> the point fit's D**p (images), the family form fitted."""
    forms = study.candidate_forms(OFFERED)
    out = []
    for seed in range(first, first + studies):
        rows = rows_of(*TRUTHS[family], seed)
        fits = {name: study.fit_rows([r for r in rows if r["stage"] == LAWS[name].stage],
                                     LAWS[name].target, forms[name][family], 0, seed,
                                     extrapolate=False)[1] for name in BOUNDARY_LAWS}
        out.append({f"{s.student_heads}/{s.df}": s.d_cross
                    for s in bnd.boundaries(rows, {"d": fits})})
    return out


def coverage(ensembles: list[dict]) -> None:
    for key in sorted({k for s in ensembles for k in s if "/" in k}):
        hit = {"members": [], "open": [], "bc": []}
        for s in ensembles:
            m = s[key]
            cross = np.array([np.nan if c is None else c for c in m["cross"]])
            top = np.array([np.nan if t is None else t for t in m["top"]])
            kept = cross[~np.isnan(cross)]
            ci = np.percentile(kept, (2.5, 97.5)) if kept.size and m["point"] else None
            hit["members"].append(ci is not None and ci[0] <= s["true"] <= ci[1])
            ci = open_percentile(beyond_range(cross, top))
            hit["open"].append(ci is not None and ci[0] <= s["true"] <= ci[1])
            ci = bias_corrected(kept, m["point"]) if kept.size and m["point"] else None
            hit["bc"].append(ci is not None and ci[0] <= s["true"] <= ci[1])
        print(f"{key:18s} {len(hit['open'])} slices: covered, members only "
              f"{np.mean(hit['members']):.0%}, open {np.mean(hit['open']):.0%}, bias-corrected "
              f"{np.mean(hit['bc']):.0%}")


def bias_corrected(members: np.ndarray, point: float) -> tuple[float, float]:
    """Efron's BC percentile interval (no acceleration), widened to hold the point fit."""
    share = np.clip(np.mean(members < point), 0.5 / members.size, 1 - 0.5 / members.size)
    z0 = stats.norm.ppf(share)
    lo, hi = np.percentile(members, 100 * stats.norm.cdf(2 * z0 + stats.norm.ppf([0.025, 0.975])))
    return min(lo, point), max(hi, point)


def spread(points: list[dict], ensembles: list[dict]) -> None:
    ratios = []
    for key in points[0]:
        logs = np.log([p[key] for p in points if p.get(key)])
        mine = [s for s in ensembles if f"{s['student']}/{s['df']}" == key]
        if not mine or logs.size < 3:
            continue
        boot = np.mean([np.std(np.log([c for c in s["pairs/family"]["cross"] if c])) for s in mine])
        true = math.log(mine[0]["true"])
        ratios.append(boot / logs.std(ddof=1))
        print(f"{key:10s} {logs.size} studies: sd log D**p {logs.std(ddof=1):.3f}, bootstrap "
              f"{boot:.3f} (ratio {ratios[-1]:.2f}); bias {logs.mean() - true:+.3f}; within 1.96 "
              f"bootstrap sd of the truth {np.mean(np.abs(logs - true) <= 1.96 * boot):.0%}")
    if ratios:
        print(f"median bootstrap / sampling sd: {np.median(ratios):.2f} over {len(ratios)} slices")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--truth", choices=sorted(TRUTHS), required=True)
    p.add_argument("--studies", type=int, default=40)
    p.add_argument("--first", type=int, default=100)   # seeds apart from the ensembles' 0, 1, ...
    p.add_argument("--out")
    p.add_argument("--spread")
    p.add_argument("--ensembles", nargs="*", default=[])
    args = p.parse_args()
    if args.out:
        with threadpool_limits(1, "blas"):
            found = point_crossings(args.truth, args.studies, args.first)
        with open(args.out, "w") as f:
            json.dump(found, f)
    ensembles = [s for path in args.ensembles for s in json.loads(Path(path).read_text())]
    if ensembles:
        coverage(ensembles)
    if args.spread and ensembles:
        spread(json.loads(Path(args.spread).read_text()), ensembles)


if __name__ == "__main__":
    main()
