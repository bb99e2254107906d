"""`python -m raysweep.adaptive --target boundary|hparams`: pin down what the grid left uncertain.

  --target boundary   rounds of extra runs where the distillation boundary D**p is still
                      uncertain (where only the measured differences cross, their model-free
                      crossing), until every slice's 95 % interval is within --tol or the budget
                      (--budget: compute, by default as much again as the grid's; see
                      raysweep.adaptive.budget) is spent (raysweep.adaptive.loop); a slice
                      whose laws cross where most seed draws of its measurements do not is
                      reported, not chased; OUT/adaptive.json holds the rounds and the compute
                      spent and left.
  --target hparams    hyper-parameters per model size by TPE + ASHA on the sweep's proxy budget
                      (raysweep.hparams.search); OUT/hparams.yaml holds the best values.

OUT holds no results yet: the sweep's grid runs first. Re-running the same command resumes.
Exit 1 (--target boundary) when some of the grid's or the rounds' trials failed or diverged.
"""

from __future__ import annotations

import sys

from raysweep import cli
from raysweep.adaptive import budget, loop
from raysweep.errors import InputError
from raysweep.hparams import search, space
from raysweep.run import executor, track
from raysweep.run import trial as trial_mod
from raysweep.store import results
from raysweep.sweep import plan
from raysweep.sweep.spec import Sweep


def boundary_target(args, sweep: Sweep, out: str) -> int:
    check(args)
    tracker = track.tracker(args.track, sweep.monitor["project"])
    grid = plan.plan(sweep)
    limit = budget.parse(args.budget, sum(t.flops for t in grid), args.throughput)
    cli.preflight(args, sweep, grid, out)
    rerun = cli.resumed(args, out, grid).rerun   # --other-code rerun: the grid's, once
    ctx = trial_mod.Context(out, sweep.data_root, download=args.download,
                            eval_every=sweep.monitor["eval_every"])

    def runner(trials: list) -> int:
        done = results.finished_ids(out) - rerun
        rerun.difference_update(t.trial_id for t in trials)
        return executor.run(trials, ctx, name=sweep.name, retries=sweep.retries,
                            address=args.address, tracker=tracker, done=done)
    loop.rounds(sweep, out, runner, limit, args.batch, args.tol, args.bootstrap,
                choose=loop.RULES[args.rule], verbose=args.verbose)
    table = cli.finish(out, args.bootstrap, sweep.laws, args.verbose)
    # the grid's trials and every trial the rounds ran (all of them have a record in OUT)
    recorded = set(table["trial_id"].to_pylist())
    return cli.outcome({t.trial_id for t in grid} | recorded, out, table)


def hparams_target(args, sweep: Sweep, out: str) -> int:
    cli.preflight(args, sweep, plan.plan(sweep), out)
    return search.target(args, sweep, out)


def check(args) -> None:
    """Numbers that cannot work stop the command before anything runs."""
    rules = (("batch", args.batch >= 1, ">= 1"),
             ("tol", args.tol > 0, "> 0"),
             ("rule", args.rule in loop.RULES, f"one of {sorted(loop.RULES)}"),
             ("bootstrap", args.bootstrap >= loop.MIN_BOOTSTRAP,
              f">= {loop.MIN_BOOTSTRAP} (the intervals come from the resamples)"))
    for name, ok, expected in rules:
        if not ok:
            raise InputError(f"--{name} must be {expected}, got {getattr(args, name)}")


TARGETS = {"boundary": boundary_target, "hparams": hparams_target}


def parser():
    p = cli.parser("python -m raysweep.adaptive", __doc__)
    p.add_argument("--target", required=True, help=f"what to pin down: one of {sorted(TARGETS)}")
    p.add_argument("--budget", default=loop.DEFAULTS["budget"],
                   help="what the rounds after the grid may spend: 1x (the grid's compute "
                        "again), FLOPs (2e18), GPU-hours (40gpuh) or trials (120) "
                        "(default %(default)s)")
    p.add_argument("--throughput", type=float, default=budget.THROUGHPUT,
                   help="FLOP/s one GPU sustains, for --budget in GPU-hours (default "
                        "%(default)g, an assumption: ~10 %% of an H100's bf16 peak)")
    p.add_argument("--batch", type=int, default=loop.DEFAULTS["batch"],
                   help="proposals per round: pairs (plain fine-tune + distillation at one "
                        "Dp), fine-tunes or whole or partial Dp rows (default %(default)s)")
    p.add_argument("--tol", type=float, default=loop.DEFAULTS["tol"],
                   help="stop when every D**p 95 %% interval is narrower than this, relative: "
                        "(hi - lo) / D**p (default %(default)s, i.e. +-10 %%)")
    p.add_argument("--rule", default=loop.DEFAULTS["rule"],
                   help="where a round's runs go: design (largest expected drop of the D**p "
                        "intervals per FLOP) or crossing (where the ensemble's D**p splits "
                        "evenly) (default %(default)s)")
    p.add_argument("--trials", type=int, default=None,
                   help="--target hparams: candidates per model size (default: the sweep's "
                        f"hparams.trials, else {space.DEFAULT_TRIALS})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    target = TARGETS.get(args.target)
    if target is None:
        print(f"error: unknown --target {args.target!r}; expected one of {sorted(TARGETS)}",
              file=sys.stderr)
        return cli.BAD_INPUT
    out = None
    try:
        sweep, out = cli.load(args)
        return target(args, sweep, out)
    except (InputError, OSError) as err:
        cli.say_error(err)
        return cli.BAD_INPUT
    except KeyboardInterrupt:
        return cli.interrupted("python -m raysweep.adaptive", argv, out)


if __name__ == "__main__":
    sys.exit(main())
