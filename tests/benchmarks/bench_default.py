"""Is the embedded default a credible miniature of the paper? The six criteria of issue 14.

    python tests/benchmarks/bench_default.py [--sweep default] [--out runs/bench-default]
                                             [--reuse]

Runs the grid (`python -m raysweep.grid`), then `python -m raysweep.adaptive --target boundary`
with its defaults, each timed as a user would see it (subprocess, wall clock), and prints one
Markdown table: criterion, what was measured, pass or fail. --reuse skips the runs and judges
what OUT already holds (the times are then unknown). Run it on an idle machine: the times are
criteria.

  1. grid wall time <= 10 min (install excluded)
  2. error and distilled-error laws: every exponent's 95 % interval within [x / 2, 2 x];
     E identified (its interval excludes 0) -- or left out with a reason
  3. extrapolation MAPE <= 5 % holding out the largest Dp, <= 10 % the largest size and Df
     (beside each MAPE, what the true law would score given the held-out rows' seed noise; and
     each law's lack of fit to its own grid points)
  4. Theorem 1: in >= 2/3 of the slices, plain - distilled error > 0 at the smallest Dp and
     < 0 at the largest, each by > 2 standard errors of the seed replicates
  5. every slice whose laws cross in range: D**p's hi / lo <= 4, the estimate inside, and the
     model-free crossing inside the interval
  6. the adaptive run: <= 10 more minutes, and >= 2/3 of the crossing slices at
     (hi - lo) / D**p <= 0.5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from raysweep.adaptive import choice, loop
from raysweep.laws.catalogue import BOUNDARY_LAWS
from raysweep.store import layout

MINUTES = 10.0


def timed(argv: list[str], log: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run([sys.executable, "-m", *argv], stdout=f, stderr=subprocess.STDOUT,
                            check=False).returncode
    return time.perf_counter() - start, rc


def read_json(out: Path, rel: str):
    path = out / rel
    return json.loads(path.read_text()) if path.is_file() else None


def c1_grid_time(seconds: float | None) -> tuple[str, bool]:
    if seconds is None:
        return "not timed (--reuse)", False
    return f"{seconds / 60:.1f} min", seconds <= MINUTES * 60


def c2_exponents(fits: dict) -> tuple[str, bool]:
    notes, ok = [], True
    for ds, laws in sorted(fits["downstream"].items()):
        for name in BOUNDARY_LAWS:
            law = laws.get(name, {})
            if law.get("status") != "ok":
                notes.append(f"{ds} {name}: not fitted ({law.get('status')})")
                ok = False
                continue
            for k, term in law["terms"].items():
                x, (lo, hi) = term["exponent"], law["ci"][f"{k}.exponent"]
                good = x > 0 and x / 2 <= lo and hi <= 2 * x
                ok &= good
                notes.append(f"{name} {k} {x:.2g} [{lo:.2g}, {hi:.2g}]{'' if good else ' ✗'}")
            if "E_left_out" in law:  # no floor in the rows: said, and fitted without one
                notes.append(f"{name} E left out ({law['E_left_out'].split(':')[0]})")
                continue
            e_lo, e_hi = law["ci"]["E"]
            good = e_lo > 1e-6 * max(e_hi, 1e-12)
            ok &= good
            notes.append(f"{name} E {law['E']:.3g} [{e_lo:.3g}, {e_hi:.3g}]{'' if good else ' ✗'}")
    return "; ".join(notes), ok


def c3_extrapolation(fits: dict) -> tuple[str, bool]:
    limits = {"dp": 0.05, "params": 0.10, "df": 0.10}
    notes, ok = [], True
    for ds, laws in sorted(fits["downstream"].items()):
        for name in BOUNDARY_LAWS:
            for k, limit in limits.items():
                ex = laws.get(name, {}).get("extrapolation", {}).get(k, {})
                mape = ex.get("mape")
                good = mape is not None and mape <= limit
                ok &= good
                shown = "skipped" if mape is None else f"{100 * mape:.0f} %"
                if ex.get("noise_floor") is not None:   # what the held-out rows' noise costs
                    shown += f" (the true law: {100 * ex['noise_floor']:.1f} %)"
                notes.append(f"{name} {k} {shown}{'' if good else ' ✗'}")
            lof = laws.get(name, {}).get("lack_of_fit", {})
            if "F" in lof:   # and the law against its own grid points' seed means
                notes.append(f"{name} misses its grid points' means by {100 * lof['misfit']:.1f} "
                             f"% rms, noise alone {100 * lof['noise']:.1f} % (p {lof['p']:.2g})")
    return "; ".join(notes), ok


def c4_theorem1(slices: list[dict]) -> tuple[str, bool]:
    """boundary.json's own measured check (raysweep.laws.measured.measured_ends), which the
    report's Theorem 1 table prints slice by slice."""
    shown = sum(bool(s.get("theorem1")) for s in slices)
    told = sum(s.get("theorem1") is not None for s in slices)
    if not told:
        return f"{len(slices)} slices, none with 2 seeds at both ends: no standard error", False
    return (f"{shown} of {len(slices)} slices ({told} can tell)",
            told == len(slices) and shown >= 2 / 3 * len(slices))


def crossing(slices: list[dict]) -> list[dict]:
    return [s for s in slices if s.get("status") == "ok" and s.get("d_cross_ci")]


def c5_boundary(slices: list[dict]) -> tuple[str, bool]:
    found = crossing(slices)
    notes, ok = [], bool(found)
    for s in found:
        lo, hi = s["d_cross_ci"]
        free = s.get("model_free_cross")
        good = hi / lo <= 4 and lo <= s["d_cross"] <= hi and free is not None and lo <= free <= hi
        ok &= good
        notes.append(f"{s['student_heads']}h<-{'+'.join(map(str, s['teacher_heads']))}h "
                     f"Df={s['df']}: {s['d_cross']:.3g} [{lo:.3g}, {hi:.3g}] "
                     f"free {free if free is None else f'{free:.3g}'}{'' if good else ' ✗'}")
    return ("; ".join(notes) or f"no slice crosses in range (of {len(slices)})"), ok


def c6_adaptive(seconds: float | None, doc: dict | None) -> tuple[str, bool]:
    if doc is None:
        return "no adaptive.json", False
    found = crossing(doc["boundary"])
    narrow = sum((s["d_cross_ci"][1] - s["d_cross_ci"][0]) / s["d_cross"] <= 0.5
                 for s in found if (s.get("no_cross_fraction") or 0) <= 0.025)
    took = "not timed" if seconds is None else f"{seconds / 60:.1f} min"
    ok = (seconds is not None and seconds <= MINUTES * 60 and bool(found)
          and narrow >= 2 / 3 * len(found))
    return (f"{took}, {doc.get('trials_run', 0)} trials; {narrow} of {len(found)} crossing "
            f"slices within 0.5; stopped: {doc.get('stopped')}"), ok


def measured_after(doc: dict | None) -> tuple[str, bool]:
    """Not one of the six: the slices the adaptive run chased on their measured crossing
    (raysweep.adaptive.choice.chased_measured), and how many ended within 0.5 as criterion 6
    asks of the laws' D**p."""
    if doc is None:
        return "no adaptive.json", False
    found = [s for s in doc["boundary"] if choice.chased_measured(s)]
    narrow = [s for s in found if choice.width(s) <= 0.5]
    notes = [f"{s['student_heads']}h<-{'+'.join(map(str, s['teacher_heads']))}h Df={s['df']}: "
             f"{loop.interval_words(s)}" for s in found]
    return (f"{len(narrow)} of {len(found)} within 0.5" + (": " if notes else "")
            + "; ".join(notes)), bool(found) and len(narrow) >= 2 / 3 * len(found)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sweep", default="default")
    p.add_argument("--out", default="runs/bench-default")
    p.add_argument("--reuse", action="store_true", help="judge OUT as it is; run nothing")
    args = p.parse_args()
    out = Path(args.out)
    grid_s = adaptive_s = None
    if not args.reuse:
        out.mkdir(parents=True, exist_ok=True)
        common = ["--sweep", args.sweep, "--out", str(out)]
        grid_s, rc = timed(["raysweep.grid", *common], out / "grid.log")
        print(f"grid: {grid_s:.0f} s, exit {rc} (log {out}/grid.log)", flush=True)
    fits, slices = read_json(out, layout.FITS), read_json(out, layout.BOUNDARY)
    if not args.reuse:
        adaptive_s, rc = timed(["raysweep.adaptive", "--target", "boundary", *common],
                               out / "adaptive.log")
        print(f"adaptive: {adaptive_s:.0f} s, exit {rc} (log {out}/adaptive.log)", flush=True)
    table = [("1 grid time", *c1_grid_time(grid_s)), ("2 exponents, E", *c2_exponents(fits)),
             ("3 extrapolation", *c3_extrapolation(fits)), ("4 Theorem 1", *c4_theorem1(slices)),
             ("5 boundary", *c5_boundary(slices)),
             ("6 adaptive", *c6_adaptive(adaptive_s, read_json(out, layout.ADAPTIVE))),
             ("(measured crossings, adaptive)", *measured_after(read_json(out, layout.ADAPTIVE)))]
    print("| criterion | measured | pass |\n|---|---|---|")
    for name, measured, ok in table:
        print(f"| {name} | {measured} | {'pass' if ok else 'FAIL'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
