"""Issue 14's criterion 2 (every exponent's 95 % interval within [estimate / 2, estimate x 2]) on
rows drawn from the law itself: how wide a grid's design and its seed noise leave the intervals
when the law is exactly right, at the grid's seeds and at more.

    python tests/benchmarks/bench_interval_design.py runs/g3grid [--law error] [--reps 40]
                                                         [--seeds 2 4 8]

From the grid's own rows (OUT's results, status ok): the truth is the law the study fits to them
(`raysweep.laws.study.fit_rows`, 200 bootstrap resamples, the floor judged as the grid judges
it); the design is their distinct grid points; the noise is the seeds' scatter of log y around
each point's mean, pooled per Dp (the default's seeds scatter 2.4x more at Dp 512 than at Dp 8).
Each replication draws SEEDS rows a point, log y = log truth + N(0, sd of its Dp), and fits them
as the study does. Printed per seed count: for each exponent the share of replications meeting
criterion 2, the median hi / lo of its interval, and how often the interval holds the truth (the
bootstrap's coverage; 95 % if it is calibrated); the share where E is left out (right: the truth
has none, where the grid's law had none); CPU seconds. The grid's compute grows with the seeds
(2 -> 4 doubles every trial).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from raysweep.laws.boundary import ok_rows
from raysweep.laws.catalogue import LAWS, SYMBOLS, paper_form
from raysweep.laws.checks import seed_sd
from raysweep.laws.study import DEFAULT_BOOTSTRAP, fit_rows
from raysweep.store import results


def design(rows: list[dict], inputs) -> tuple[list[dict], dict[float, float]]:
    """(distinct grid points as row dicts, seed sd of log y per Dp) of a law's rows."""
    cols = {k: np.array([r[k] for r in rows], dtype=float) for k in inputs}
    y = np.array([r["y"] for r in rows])
    points = np.unique(np.column_stack(list(cols.values())), axis=0)
    spread = {float(dp): seed_sd({k: v[cols["dp"] == dp] for k, v in cols.items()},
                                 y[cols["dp"] == dp]) for dp in np.unique(cols["dp"])}
    return [dict(zip(inputs, p)) for p in points], spread


def simulate(points, spread, law, seeds: int, rng) -> list[dict]:
    rows = []
    for seed in range(seeds):
        for p in points:
            y = law.predict({k: np.array([v]) for k, v in p.items()})[0]
            rows.append({**p, "y": float(y * np.exp(rng.normal(0.0, spread[p["dp"]]))),
                         "seed": seed})
    return rows


def meets(ci, estimate) -> bool:
    return estimate / 2 <= ci[0] and ci[1] <= estimate * 2


def run(out: str, name: str, reps: int, seed_counts) -> None:
    spec = LAWS[name]
    real = [{**r, "y": r[spec.target]} for r in ok_rows(results.read(out))
            if r["stage"] == spec.stage]
    entry, fit = fit_rows(real, "y", paper_form(name), DEFAULT_BOOTSTRAP, 0, extrapolate=False)
    if isinstance(fit, str):
        raise SystemExit(f"{out}: the {name} law has no fit ({fit})")
    inputs = entry.inputs
    points, spread = design(real, inputs)
    truth = fit.law
    exps = {k: truth.terms[k][1] for k in inputs}
    print(f"{out}, the {name} law: {len(real)} rows, {len(points)} grid points; truth "
          + ", ".join(f"{SYMBOLS[k].exponent} {v:.3g}" for k, v in exps.items())
          + f", E {truth.E:.3g}" + (" (left out)" if entry.E_left_out is not None else "")
          + "; seed sd of log y per Dp " + ", ".join(f"{d:g}: {s:.3f}" for d, s in spread.items())
          + "\n", flush=True)
    print("| seeds | " + " | ".join(f"{SYMBOLS[k].exponent}: within x2 / median hi/lo / covers"
                                     for k in inputs) + " | all within x2 | E left out | CPU s |")
    print("|---" * (len(inputs) + 4) + "|")
    for seeds in seed_counts:
        rng = np.random.default_rng(seeds)
        start = time.process_time()
        within = {k: [] for k in inputs}
        ratio = {k: [] for k in inputs}
        covers = {k: [] for k in inputs}
        left_out = 0
        for rep in range(reps):
            drawn, sim = fit_rows(simulate(points, spread, truth, seeds, rng), "y", fit.form,
                                  DEFAULT_BOOTSTRAP, rep, extrapolate=False)
            left_out += "E_left_out" in drawn
            for k in inputs:
                lo, hi = sim.ci[SYMBOLS[k].exponent]
                within[k].append(meets((lo, hi), sim.law.terms[k][1]))
                ratio[k].append(hi / lo if lo > 0 else np.inf)
                covers[k].append(lo <= exps[k] <= hi)
        every = np.mean(np.all([within[k] for k in inputs], axis=0))
        cells = [f"{100 * np.mean(within[k]):.0f} % / {np.median(ratio[k]):.2f} / "
                 f"{100 * np.mean(covers[k]):.0f} %" for k in inputs]
        print(f"| {seeds} | " + " | ".join(cells) + f" | {100 * every:.0f} % | "
              f"{100 * left_out / reps:.0f} % | {time.process_time() - start:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="a grid's OUT directory (its results/ are read)")
    parser.add_argument("--law", default="error", choices=[n for n in LAWS if "error" in n])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()
    run(args.out, args.law, args.reps, args.seeds)


if __name__ == "__main__":
    main()
