"""The cost of per-epoch evaluation (issue 18) on the embedded default's trials.

Run: PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_monitor.py [--rounds 2] [--every 1]
(about 6 minutes on the shared 2-core dev box at 2 rounds). One torch thread, as a trial with
the default's `cpu: 1`. Trials: pretraining of 2 and 8 heads at the smallest and largest Dp
(500, 4,000 images; 8 epochs; 800 test images), and fine-tunes of those sizes from the largest
Dp at the smallest and largest Df (360, 1,437 images; 10 epochs; 360 test images). Each trial
runs twice per round, in turn: `without` -- no per-epoch reports, the trial as before issue 18
(a checkpoint each epoch, one evaluation at the end); `with` -- the reports the executor makes,
evaluating every `--every` epochs (the last epoch's numbers are the final evaluation's either
way). Prints per trial the CPU seconds of this process (min over rounds: the machine is shared
and other tenants stretch wall time, not this process's CPU time) and the ratio, then the total.
Both runs of a trial must give the same error: evaluation changes nothing training computes.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time

import torch

from raysweep import cli
from raysweep.run import trial as trial_mod
from raysweep.sweep import plan, spec


def chosen(trials: list[plan.Trial]) -> list[plan.Trial]:
    """Pretrainings first (the fine-tunes load their checkpoints), then the fine-tunes."""
    pre = [t for t in trials if t.stage == "pretrain" and t.config["model"]["heads"] in (2, 8)
           and t.config["dp"] in (500, 4000)]
    big = {t.trial_id for t in pre if t.config["dp"] == 4000}
    fine = [t for t in trials if t.stage == "finetune" and t.depends_on[0] in big]
    ends = {min(t.config["df"] for t in fine), max(t.config["df"] for t in fine)}
    fine = [t for t in fine if t.config["df"] in ends]
    return pre + fine


def timed(t: plan.Trial, out: str, every: int | None) -> tuple[float, float, float, float]:
    """(CPU seconds, wall seconds, error, seconds inside the per-epoch evaluations) of one run
    of `t`; every None: no reports."""
    rows: list[dict] = []
    report = None if every is None else (lambda _, m: rows.append(m))
    ctx = trial_mod.Context(out, on_epoch=report, eval_every=every or 0)
    cpu, wall = time.process_time(), time.perf_counter()
    record = trial_mod.run(t, ctx)
    return (time.process_time() - cpu, time.perf_counter() - wall, record["error"],
            sum(r.get("eval_s", 0.0) for r in rows))


def label(t: plan.Trial) -> str:
    c = t.config
    return f"{t.stage} h{c['model']['heads']} Dp={c['dp']}" + (f" Df={c['df']}" if "df" in c
                                                                else "")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--every", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    trials = chosen(plan.plan(spec.load(cli.sweep_path(None))))
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for t in trials:
                modes = [("without", None), ("with", args.every)]
                errors = {}
                for mode, every in modes if r % 2 == 0 else modes[::-1]:
                    # one OUT: a rerun replaces its record and its (bit-identical) checkpoint
                    cpu, wall, errors[mode], eval_s = timed(t, tmp, every)
                    slot = best.setdefault(label(t), {})
                    slot["eval_s"] = min(slot.get("eval_s", float("inf")), eval_s) if every \
                        else slot.get("eval_s", float("inf"))
                    slot[mode] = min(slot.get(mode, float("inf")), cpu)
                    slot[mode + "_wall"] = min(slot.get(mode + "_wall", float("inf")), wall)
                assert errors["with"] == errors["without"], (label(t), errors)
    print(f"# {datetime.date.today()} {platform.node()} torch {torch.__version__}, 1 thread, "
          f"eval every {args.every} epoch(s), min of {args.rounds} rounds")
    print("| trial | CPU s without | CPU s with | with / without | s in evaluations | "
          "evaluations / without |\n|---|---|---|---|---|---|")
    for name, s in best.items():
        print(f"| {name} | {s['without']:.1f} | {s['with']:.1f} | "
              f"{s['with'] / s['without']:.3f} | {s['eval_s']:.2f} | "
              f"{s['eval_s'] / s['without']:.3f} |")
    without = sum(s["without"] for s in best.values())
    with_ = sum(s["with"] for s in best.values())
    evals = sum(s["eval_s"] for s in best.values())
    print(f"| all | {without:.1f} | {with_:.1f} | {with_ / without:.3f} | {evals:.2f} | "
          f"{evals / without:.3f} |")


if __name__ == "__main__":
    main()
