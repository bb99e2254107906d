"""`python -m raysweep.grid`: the main job. Sweep file -> trials -> Ray -> results -> fit -> report.

Runs every trial of a sweep that has no result yet under OUT (so the same command resumes, and
after the grid is done only reports), then fits the laws, locates the distillation boundary and
writes the report. Connects to a running cluster when there is one (--address or RAY_ADDRESS),
else starts Ray locally. With no arguments it runs the embedded default (sweeps/default.yaml:
formula-driven pretraining images -> novel formula-driven classes) on the CPU in minutes.
"""

from __future__ import annotations

import json
import sys

from raysweep import cli
from raysweep.errors import InputError
from raysweep.run import executor, track
from raysweep.run.trial import Context
from raysweep.sweep import memory, plan


def dry_run(trials: list[plan.Trial], as_json: bool, sweep=None) -> str:
    summary = plan.summary(trials)
    summary["compute_flops"] = sum(plan.flops(t) for t in trials)
    if sweep is not None:
        summary["memory"] = memory.summary(sweep, trials, sweep.gpu)
    if as_json:
        # each entry carries its config too, so it can be run alone: python -m raysweep.trial
        return json.dumps({**summary, "trials": [t.summary() | {"config": t.config}
                                                 for t in trials],
                           "count": len(trials)}, indent=1)
    lines = [f"{summary['trials']} trials: " + ", ".join(
        f"{n} {s}" for s, n in summary["by_stage"].items()),
        f"compute: {summary['compute_flops']:.3g} FLOPs (6 x params x tokens x images seen)"]
    for heads, size in summary["sizes"].items():
        res = ", ".join(f"{k} {v:g}" for k, v in size["resources"].items())
        lines.append(f"  {heads} heads: {size['params']:,} parameters; {res} per trial")
    if sweep is not None:
        gpu = sweep.gpu or "none named; --gpu TYPE checks the shares"
        lines += [f"memory (estimated; GPU type: {gpu}):", *memory.describe(sweep, trials, sweep.gpu)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("python -m raysweep.grid", __doc__)
    p.add_argument("--dry-run", action="store_true", help="print the plan, then check the data; "
                                                          "run nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: one JSON object")
    args = p.parse_args(argv)
    try:
        sweep, out = cli.load(args)
        tracker = track.tracker(args.track, sweep.monitor["project"])
    except (InputError, OSError) as err:
        cli.say_error(err)
        return cli.BAD_INPUT
    try:
        trials = plan.plan(sweep)
        if args.dry_run:   # the plan first: it is what was asked for, whatever the data says
            print(dry_run(trials, args.json, sweep))
        cli.preflight(args, sweep, trials, None if args.dry_run else out)
        if args.dry_run:
            return cli.OK
        found = cli.resumed(args, out, trials)
        ctx = Context(out, sweep.data_root, download=args.download,
                      eval_every=sweep.monitor["eval_every"])
        n = executor.run(trials, ctx, name=sweep.name, retries=sweep.retries,
                         address=args.address, tracker=tracker, done=found.done)
    except InputError as err:  # a missing dataset, an unwritable OUT, a node-local OUT, ...
        cli.say_error(err)
        return cli.BAD_INPUT
    except KeyboardInterrupt:
        return cli.interrupted("python -m raysweep.grid", argv, out)
    print(f"{sweep.name}: {len(trials)} trials, {n} run now, "
          f"{len(trials) - n} already done; results in {out}/results")
    try:
        table = cli.finish(out, args.bootstrap, sweep.laws, args.verbose)
    except KeyboardInterrupt:
        return cli.interrupted("python -m raysweep.grid", argv, out)
    return cli.outcome({t.trial_id for t in trials}, out, table)


if __name__ == "__main__":
    sys.exit(main())
