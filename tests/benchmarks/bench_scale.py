"""How the whole `python -m raysweep.grid` scales with the number of trials, on the simulate backend:
seconds per trial and the driver's peak memory at 175 x SEEDS trials (issue 37).

    flock /tmp/raysweep-cpu.lock python tests/benchmarks/bench_scale.py --trials 175 700 \
        --repo /work/wt/37-base --repo /work/wt/37

The shipped simulate sweep plans 175 trials a seed (28 pretrainings, 84 fine-tunes, 63
distillations), so N trials are N / 175 seeds. Each run is a fresh process with its own local Ray
(all of this machine's cores), a fresh OUT and `--bootstrap 0`, from trial planning to the report;
`--repo` puts that checkout's raysweep first on PYTHONPATH, so the code before and after a change
run side by side under the same load. The driver's peak resident memory is its VmHWM, read from
/proc while it runs (Ray's own processes are not counted: they are not the driver), and the same peak as it was when
the trials had ended (before the fits and the report); the driver's CPU seconds (user + system)
by then say how much of a trial's time is the driver's own work, which a loaded machine's wall
time hides; and the seconds a trial in each tenth of the run (from the records' finished_at), so
a cost that grows with the trials already run shows within one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[2]
PER_SEED = 175


def sweep_file(folder: Path, trials: int) -> Path:
    raw = yaml.safe_load((ROOT / "sweeps" / "simulate.yaml").read_text())
    seeds = max(1, round(trials / PER_SEED))
    raw |= {"name": f"scale{trials}", "seeds": list(range(seeds))}
    path = folder / f"scale{trials}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """PID's user + system CPU seconds (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def by_tenth(results: Path) -> list[float]:
    """Seconds a trial within each tenth of the finished trials, in the order they finished."""
    ends = sorted(pq.read_table(f, columns=["finished_at"])["finished_at"][0].as_py().timestamp()
                  for f in results.glob("*.parquet"))
    if len(ends) < 20:
        return []
    cuts = [ends[round(i * (len(ends) - 1) / 10)] for i in range(11)]
    return [round((b - a) / (len(ends) / 10), 3) for a, b in itertools.pairwise(cuts)]


def run(repo: str, trials: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sweep = sweep_file(Path(tmp), trials)
        env = {**os.environ, "PYTHONPATH": repo, "RAY_AUTH_MODE": "disabled"}
        cmd = [sys.executable, "-m", "raysweep.grid", "--sweep", str(sweep), "--out",
               f"{tmp}/out", "--bootstrap", "0"]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        peak, trials_done_at, trials_peak, trials_cpu, lines = 0, None, 0, 0.0, []
        os.set_blocking(proc.stdout.fileno(), False)
        while proc.poll() is None:
            peak = max(peak, peak_kib(proc.pid))
            for line in iter(proc.stdout.readline, ""):
                lines.append(line)
                if " run now, " in line:
                    trials_done_at = time.perf_counter() - start
                    trials_peak, trials_cpu = peak_kib(proc.pid), cpu_s(proc.pid)
            time.sleep(0.2)
        lines += proc.stdout.readlines()
        wall = time.perf_counter() - start
        ran = next((ln for ln in lines if " run now, " in ln), "").strip()
        n = len(list(Path(f"{tmp}/out/results").glob("*.parquet")))
        tenths = by_tenth(Path(f"{tmp}/out/results"))
    return {"repo": repo, "trials": n, "planned": trials, "rc": proc.returncode,
            "wall_s": round(wall, 1), "trials_s": round(trials_done_at or wall, 1),
            "s_per_trial": round(wall / max(n, 1), 4), "driver_peak_mb": round(peak / 1024),
            "peak_by_trials_end_mb": round(trials_peak / 1024),
            "driver_cpu_s_by_trials_end": round(trials_cpu, 1), "s_per_trial_by_tenth": tenths,
            "line": ran, "tail": "" if proc.returncode in (0, 1) else "".join(lines[-15:])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, nargs="+", default=[175, 700])
    p.add_argument("--repo", action="append", default=None,
                   help="a checkout whose raysweep runs (repeat to compare; default: this one)")
    args = p.parse_args()
    for trials in args.trials:
        for repo in args.repo or [str(ROOT)]:
            print(json.dumps(run(repo, trials)), flush=True)


if __name__ == "__main__":
    main()
