"""Issue 35, speed: the paper's forms fit no slower through the declared-form fitter than through
the fitter it replaced, and a 6-parameter non-additive form fits 400 rows with intervals in under
a minute.

Run: flock /tmp/raysweep-cpu.lock .venv/bin/python tests/benchmarks/bench_forms_speed.py
     [--base 7929f30] [--repeat 3]          (about 3-5 minutes, 2 cores)

The base commit's `raysweep/` is exported with `git archive` into a temporary folder and timed in
its own subprocess, alternating with the working tree's, so both see the same load. Workloads:
the Chinchilla reference (240 rows, 2 inputs, 4,500 grid starts) with 200 bootstrap refits, and
400 rows of the paper's 4-input form (4,096 Sobol starts) with 100 refits.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]

WORKLOAD = r'''
import sys, time, json
import numpy as np
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from threadpoolctl import threadpool_limits
import pyarrow.csv as pacsv
from raysweep.laws import fitting
t = pacsv.read_csv(sys.argv[2] + "/data/chinchilla_svg_extracted_data.csv").to_pydict()
n_params = np.array(t["Model Size"])
tokens = np.array(t["Training FLOP"]) / (6 * n_params)
keep = np.argsort(np.array(t["loss"]))[:-5]   # tests/test_laws.py's 240 rows
X, y = {"N": n_params[keep], "D": tokens[keep]}, np.array(t["loss"])[keep]
rng = np.random.default_rng(5)
n = 400
X4 = {"dp": np.exp(rng.uniform(np.log(1e3), np.log(1e6), n)),
      "params": np.exp(rng.uniform(np.log(1e5), np.log(1e8), n)),
      "df": np.exp(rng.uniform(np.log(1e2), np.log(1e4), n)),
      "teacher_params": np.exp(rng.uniform(np.log(1e5), np.log(1e8), n))}
y4 = (0.05 + 3 * X4["dp"] ** -0.3 + 6 * X4["params"] ** -0.3 + 0.5 * X4["df"] ** -0.3
      + 2 * X4["teacher_params"] ** -0.25) * np.exp(0.003 * rng.standard_normal(n))
out = {}
with threadpool_limits(1, "blas"):
    for name, (XX, yy, b) in {"chinchilla, 2 inputs, B=200": (X, y, 200),
                              "400 rows, 4 inputs, B=100": (X4, y4, 100)}.items():
        t = time.perf_counter()
        fit = fitting.fit_law(XX, yy, bootstrap=b, seed=0)
        out[name] = [time.perf_counter() - t, fit.objective]
print(json.dumps(out))
'''


def export(commit: str, into: pathlib.Path) -> pathlib.Path:
    archive = into / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), commit, "raysweep"],
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def run(package_root: pathlib.Path) -> dict:
    import json
    proc = subprocess.run([sys.executable, "-c", WORKLOAD, str(package_root),
                           str(ROOT / "tests")], check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def nonadditive() -> tuple[float, float, int]:
    """(seconds, objective, parameters) of a 6-parameter mixed form with 100 bootstrap refits."""
    sys.path.insert(0, str(ROOT))
    from raysweep.laws.fitting import fit_form
    from raysweep.laws.form import parse
    rng = np.random.default_rng(1)
    X = {"N": np.exp(rng.uniform(np.log(1e7), np.log(1e10), 400)),
         "D": np.exp(rng.uniform(np.log(1e8), np.log(1e11), 400))}
    form = parse("E + (A / N**(a / c) + B / D**(b / c))**c", ["N", "D"])
    y = form.predict(X, {"E": 1.7, "A": 400.0, "B": 2000.0, "a": 0.34 * 0.8, "b": 0.37 * 0.8,
                         "c": 0.8}) * np.exp(0.005 * rng.standard_normal(400))
    t = time.perf_counter()
    fit = fit_form(form, X, y, bootstrap=100, seed=0)
    return time.perf_counter() - t, fit.objective, len(form.params)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="7929f30")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.base, pathlib.Path(tmp))
        times: dict[str, dict[str, list]] = {}
        for _ in range(args.repeat):   # alternate, so both see the same load
            for label, root in (("base", base), ("forms", ROOT)):
                for name, (sec, obj) in run(root).items():
                    times.setdefault(name, {}).setdefault(label, []).append((sec, obj))
    for name, by in times.items():
        b = statistics.median(s for s, _ in by["base"])
        f = statistics.median(s for s, _ in by["forms"])
        print(f"{name}: base {b:.2f} s, forms {f:.2f} s ({100 * (f / b - 1):+.1f} %); "
              f"objective base {by['base'][0][1]:.8g}, forms {by['forms'][0][1]:.8g}")
    sec, obj, k = nonadditive()
    print(f"6-parameter non-additive form, 400 rows, 100 bootstrap refits: {sec:.1f} s "
          f"({k} parameters, objective {obj:.6g})")


if __name__ == "__main__":
    main()
