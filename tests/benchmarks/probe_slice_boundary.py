"""Would a boundary fitted per slice locate what the joint laws cannot? A probe on a finished OUT.

    python tests/benchmarks/probe_slice_boundary.py OUT [--resamples 500]

Eq. 1 and eq. 4 are sums of one term per input, so plain - distilled, F(Dp), has one shape in
every slice (a slice only shifts it). Here each slice gets its own Dp coefficient and constant:
E_plain = a + b Dp^-alpha and E_distilled = a' + b' Dp^-alpha' by least squares on the slice's
rows, with alpha and alpha' the joint fits' exponents (OUT/fits.json), and D**p the first + to -
turn of their difference in [smallest Dp / 100, largest Dp x 100]. Interval: percentile 95 % over
resamples of each Dp's rows (plain and distilled apart), with the share that do not cross.
Printed per slice beside the model-free crossing of OUT/boundary.json. Issue 14 (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from raysweep.laws import boundary
from raysweep.store import results


def by_dp(rows: list[dict]) -> dict[float, list[float]]:
    out = defaultdict(list)
    for r in rows:
        out[r["dp"]].append(r["error"])
    return out


def line(errors: dict[float, list[float]], alpha: float) -> np.ndarray:
    """(a, b) of a + b Dp^-alpha, least squares over every row."""
    x = np.concatenate([[dp ** -alpha] * len(v) for dp, v in errors.items()])
    y = np.concatenate(list(errors.values()))
    return np.linalg.lstsq(np.c_[np.ones_like(x), x], y, rcond=None)[0]


def cross(plain, distilled, alphas, lo: float, hi: float) -> float | None:
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), boundary.SCAN_POINTS))
    f = ((plain[0] + plain[1] * grid ** -alphas[0])
         - (distilled[0] + distilled[1] * grid ** -alphas[1]))
    turns = np.flatnonzero((f[:-1] > 0) & (f[1:] <= 0))
    if not turns.size:
        return None
    i = turns[0]
    return float(np.exp(np.interp(0.0, [-f[i], -f[i + 1]], np.log(grid[i:i + 2]))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--resamples", type=int, default=500)
    args = ap.parse_args()
    out = Path(args.out)
    fits = json.loads((out / "fits.json").read_text())["downstream"]
    rows = boundary.ok_rows(results.read(str(out)))
    rng = np.random.default_rng(0)
    print("| slice | Dp measured | D**p per slice [95 %] | no crossing | model-free crossing |")
    print("|---|---|---|---|---|")
    for s in json.loads((out / "boundary.json").read_text()):
        laws = fits[s["downstream"]]
        alphas = [laws[name]["terms"]["dp"]["exponent"] for name in ("error", "distilled_error")]
        mine = [r for r in rows if r["stage"] == "finetune" and r["downstream"] == s["downstream"]
                and r["heads"] == s["student_heads"] and r["df"] == s["df"]]
        theirs = [r for r in rows if r["stage"] == "distill" and boundary.slice_key(r)
                  == boundary.slice_key(s)]
        p, d = by_dp(mine), by_dp(theirs)
        dps = sorted(set(p) & set(d))
        p, d = {k: p[k] for k in dps}, {k: d[k] for k in dps}
        lo, hi = dps[0] / boundary.DP_RANGE_FACTOR, dps[-1] * boundary.DP_RANGE_FACTOR
        est = cross(line(p, alphas[0]), line(d, alphas[1]), alphas, lo, hi)
        draws = [cross(line({k: rng.choice(v, len(v)) for k, v in p.items()}, alphas[0]),
                       line({k: rng.choice(v, len(v)) for k, v in d.items()}, alphas[1]),
                       alphas, lo, hi) for _ in range(args.resamples)]
        hit = [x for x in draws if x is not None]
        ci = "[{:.3g}, {:.3g}]".format(*np.percentile(hit, [2.5, 97.5])) if hit else "-"
        name = (f"{s['student_heads']} <- {'+'.join(map(str, s['teacher_heads']))}, "
                f"Df {s['df']}")
        mf = s.get("model_free_cross")
        print(f"| {name} | {', '.join(f'{x:g}' for x in dps)} | "
              f"{'none' if est is None else f'{est:.3g}'} {ci} | "
              f"{1 - len(hit) / len(draws):.0%} | {'-' if mf is None else f'{mf:.3g}'} |")


if __name__ == "__main__":
    main()
