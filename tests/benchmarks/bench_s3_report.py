"""A report-only re-run of a finished OUT on a local S3-compatible server against the same on local
disk (issue 37): `python -m raysweep.fit OUT --bootstrap 0` on 1,400 simulated trial records.

    flock /tmp/raysweep-cpu.lock python tests/benchmarks/bench_s3_report.py \
        --repo /work/wt/37-base --repo /work/wt/37

The OUT is made once, by the first --repo's code (8 seeds of the shipped simulate sweep, each
trial answered in-process), and copied file by file to moto's S3 server (tests/s3_server.py, on
127.0.0.1, reached through AWS_ENDPOINT_URL as a user's MinIO would be). Then each --repo's fit
command runs on the local copy and on the S3 copy, alternating, REPEATS times; the figure is the
median wall time of each (--repeats). `--only-read` times results.read alone instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import s3_server

MAKE = """
import sys, yaml
from raysweep.sweep import plan, spec
from raysweep.run import trial as trial_mod
raw = yaml.safe_load(open(sys.argv[2]))
raw |= {"seeds": list(range(int(sys.argv[3])))}
for t in plan.plan(spec.parse(raw)):
    trial_mod.run(t, trial_mod.Context(sys.argv[1]))
"""
READ = "import sys; from raysweep.store import results; print(results.read(sys.argv[1]).num_rows)"
REPEATS = 3


def env_for(repo: str) -> dict:
    return {**os.environ, **s3_server.ENV, "AWS_ENDPOINT_URL": s3_server.start(),
            "PYTHONPATH": repo, "RAY_AUTH_MODE": "disabled"}


def make_out(repo: str, local: str, remote: str, seeds: int) -> int:
    subprocess.run([sys.executable, "-c", MAKE, local, str(ROOT / "sweeps" / "simulate.yaml"),
                    str(seeds)], env=env_for(repo), check=True)
    os.environ.update(env_for(repo))
    from raysweep.store import storage
    files = sorted(Path(local, "results").glob("*.parquet"))
    for f in files:
        storage.write_bytes(remote, f"results/{f.name}", f.read_bytes())
    return len(files)


def timed(repo: str, out: str, only_read: bool) -> float:
    cmd = ([sys.executable, "-c", READ, out] if only_read else
           [sys.executable, "-m", "raysweep.fit", out, "--bootstrap", "0"])
    start = time.perf_counter()
    subprocess.run(cmd, env=env_for(repo), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", action="append", default=None)
    p.add_argument("--seeds", type=int, default=8, help="175 trials each (default 8: 1,400)")
    p.add_argument("--only-read", action="store_true")
    p.add_argument("--repeats", type=int, default=REPEATS)
    args = p.parse_args()
    repos = args.repo or [str(ROOT)]
    with tempfile.TemporaryDirectory() as tmp:
        local, remote = f"{tmp}/out", f"s3://{s3_server.BUCKET}/bench-{int(time.time())}"
        n = make_out(repos[0], local, remote, args.seeds)
        for repo in repos:
            times = {"local": [], "s3": []}
            for _ in range(args.repeats):
                for where, out in (("local", local), ("s3", remote)):
                    times[where].append(timed(repo, out, args.only_read))
            med = {k: round(statistics.median(v), 2) for k, v in times.items()}
            print(json.dumps({"repo": repo, "records": n, "what": "read" if args.only_read
                              else "fit --bootstrap 0", "median_s": med,
                              "ratio": round(med["s3"] / med["local"], 3),
                              "all_s": {k: [round(x, 2) for x in v] for k, v in times.items()}}),
                  flush=True)


if __name__ == "__main__":
    main()
