"""How long `raysweep.report.write_report` takes at the end of a run, and how big the page is.

Run: .venv/bin/python tests/benchmarks/bench_report.py  (about 1-2 minutes on 2 CPU cores)
Prints, per grid: trials, figures, seconds to read the results, seconds for the whole report,
and the size of report.html. Target: a paper-scale grid reports in well under a minute, so the
report never dominates the end of a sweep.

Grids are the simulated one of tests/test_report.py (known laws + seed noise, with fits.json,
boundary.json, adaptive.json and hparams.yaml written from the same laws):
- test:  1 downstream set, 4 sizes x 4 Dp x 2 Df x 2 seeds (+ 3 teacher sets)   ~150 trials
- paper: 4 downstream sets, 4 sizes x 8 Dp x 4 Df x 3 seeds (+ 3 teacher sets) ~2,800 trials
Output goes to a temporary directory on the local disk.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import platform
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/, for the grid

import test_report as grid

from raysweep.report import build as report
from raysweep.store import results

PAPER_DP = tuple(8_000 * 2 ** i for i in range(8))   # 8k ... 1.02M images, x2 steps
PAPER_DF = (300, 600, 1_200, 2_400)                  # images
PAPER_SETS = ("cifar10", "cifar100", "tinyimagenet", "imagenet100")


def write_grid(out: pathlib.Path, sets: tuple[str, ...], dps, dfs, seeds) -> int:
    """The simulated grid, once per downstream set (rows relabelled, ids made unique)."""
    rows = grid.grid_rows(dps=dps, dfs=dfs, seeds=seeds)
    count = 0
    for ds in sets:
        for r in rows:
            if r["stage"] == "pretrain" and ds != sets[0]:
                continue  # pretraining is shared by every downstream set
            relabelled = {**r, "trial_id": f"{ds}-{r['trial_id']}",
                          "downstream": None if r["stage"] == "pretrain" else ds}
            results.write(str(out), relabelled)
            count += 1
    fits = {"downstream": {ds: grid.LAWS_KNOWN for ds in sets}, "bootstrap": 200}
    (out / "fits.json").write_text(json.dumps(fits))
    slices = [{**grid.boundary_slice(h, df), "downstream": ds}
              for ds in sets for h in grid.TEACHERS for df in dfs]
    (out / "boundary.json").write_text(json.dumps(slices))
    (out / "adaptive.json").write_text(json.dumps(grid.ADAPTIVE))
    return count


def bench(name: str, sets, dps, dfs, seeds) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        trials = write_grid(out, sets, dps, dfs, seeds)
        t0 = time.perf_counter()
        results.read(str(out))
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        page = pathlib.Path(report.write_report(str(out)))
        total_s = time.perf_counter() - t0
        figures = len(list((out / "report" / "figures").glob("*.png")))
        print(f"{name:6s} trials {trials:5d}  figures {figures:4d}  read {read_s:6.2f} s  "
              f"report {total_s:6.2f} s ({total_s / figures:.3f} s/figure)  "
              f"report.html {page.stat().st_size / 1e6:.1f} MB")


def main() -> None:
    print(f"bench_report  {datetime.date.today()}  {platform.node()}  "
          f"{platform.processor() or platform.machine()}  python {platform.python_version()}")
    bench("test", (grid.DS,), grid.DP, grid.DF, (0, 1))
    bench("paper", PAPER_SETS, PAPER_DP, PAPER_DF, (0, 1, 2))


if __name__ == "__main__":
    main()
