"""Pilot runs for a sweep design, in one process, without Ray: every trial of SWEEP's plan run in
order (prerequisites first) by raysweep.run.trial, each timed in CPU seconds of this process
(time.process_time; one torch thread), then the seed-to-seed spread of the fine-tune error and of
plain - distilled error per grid point.

    python tests/benchmarks/pilot_default.py SWEEP.yaml OUT [--threads 1]

Rerunning with the same OUT reuses the trials that have a record (their CPU time is then the one
stored in OUT/pilot_cpu.json). Used for issue 14's pilots (docs/benchmarks-history.md, "The
embedded default, redesigned"); the full default is judged by bench_default.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from raysweep.run import trial as run_trial
from raysweep.store import results
from raysweep.sweep import plan, spec


def run_all(sweep, out: Path) -> dict[str, float]:
    cpu_file = out / "pilot_cpu.json"
    cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
    done = {r["trial_id"] for r in results.read(str(out)).to_pylist()} if out.exists() else set()
    ctx = run_trial.Context(out=str(out), eval_every=0)
    trials = plan.plan(sweep)
    for i, t in enumerate(sorted(trials, key=lambda t: ("pretrain", "finetune", "distill")
                                 .index(t.stage))):
        if t.trial_id in done:
            continue
        start = time.process_time()
        row = run_trial.run(t, ctx)
        cpu[t.trial_id] = time.process_time() - start
        c = t.config
        print(f"{i + 1}/{len(trials)} {t.stage:8s} h{c['model']['heads']} dp {c['dp']} "
              f"df {c.get('df')} s{c['seed']} err {row['error']} cpu {cpu[t.trial_id]:.1f} s",
              flush=True)
        cpu_file.write_text(json.dumps(cpu))
    return cpu


def sd(values: list[float]) -> str:
    return f"{statistics.stdev(values):.3f}" if len(values) > 1 else "-"


def report(out: Path, cpu: dict[str, float]) -> None:
    rows = [r for r in results.read(str(out)).to_pylist() if r["status"] == "ok"]
    by_stage = defaultdict(float)
    for r in rows:
        by_stage[r["stage"]] += cpu.get(r["trial_id"], 0.0)
    print("CPU s by stage:", {k: round(v, 1) for k, v in by_stage.items()},
          "total", round(sum(by_stage.values()), 1))
    plain = defaultdict(dict)
    for r in rows:
        if r["stage"] == "finetune":
            plain[(r["heads"], r["dp"], r["df"])][r["seed"]] = r["error"]
    print("\n| heads | Dp | Df | fine-tune error, mean | sd over seeds | n |\n|---|---|---|---|---|---|")
    for key in sorted(plain):
        v = list(plain[key].values())
        print(f"| {key[0]} | {key[1]} | {key[2]} | {statistics.mean(v):.3f} | {sd(v)} | {len(v)} |")
    diff = defaultdict(list)
    for r in rows:
        if r["stage"] == "distill":
            p = plain[(r["heads"], r["dp"], r["df"])].get(r["seed"])
            if p is not None:
                diff[(r["heads"], tuple(r["teacher_heads"]), r["dp"], r["df"])].append(
                    p - r["error"])
    print("\n| heads | teachers | Dp | Df | plain - distilled, mean | sd | se | n |\n"
          "|---|---|---|---|---|---|---|---|")
    for key in sorted(diff):
        v = diff[key]
        se = statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else float("nan")
        print(f"| {key[0]} | {'+'.join(map(str, key[1]))} | {key[2]} | {key[3]} | "
              f"{statistics.mean(v):+.3f} | {sd(v)} | {se:.3f} | {len(v)} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep")
    p.add_argument("out")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu = run_all(spec.load(args.sweep), out)
    report(out, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
