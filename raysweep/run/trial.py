"""Run one trial end to end, without Ray: its stage (trained, or simulated) -> its result record.

The executor calls `run` inside a Tune worker; `python -m raysweep.trial` calls it from a file. A
trial that trains is raysweep.run.stages, imported only when one runs: torch, torchvision and timm
cost a process seconds of CPU to import, which a worker that only simulates, or plans, need not
pay (BENCHMARKS.md, "Worker imports").
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable

from raysweep.store import results
from raysweep.sweep import simulate
from raysweep.sweep.plan import Trial


@dataclasses.dataclass
class Context:
    out: str
    data_root: str | None = None
    device: str = "cpu"
    download: bool = False
    # (trial, metrics) after each epoch: the per-epoch reports to Tune (`stages.epoch_metrics` says
    # what they hold). None, the default, costs nothing.
    on_epoch: Callable[[Trial, dict], None] | None = None
    # Epochs between test evaluations in those reports (0: none before the phase's end, whose
    # numbers come from training's own final evaluation). Not part of the trial's config, hence
    # of its id: it changes what is watched, never the result (evaluation draws no random numbers
    # and leaves the weights and the model's mode as they were).
    eval_every: int = 1
    # Seconds between those reports, at least: an epoch in between is not reported unless it
    # evaluates; a phase's last epoch always is. A report costs a Tune worker as long a wait for
    # the driver as a step of the default's models takes, and a fixed-step run on a few dozen
    # images has one step per epoch (BENCHMARKS.md, "Trials: the step"). 0: every epoch.
    report_every_s: float = 1.0


def run(trial: Trial, ctx: Context, *, attempts: int = 1) -> dict:
    """Run `trial`, write its result record under ctx.out, and return the record."""
    start = time.perf_counter()
    if trial.config["backend"] == "simulate":
        outcome = simulate.answer(trial)
    else:
        from raysweep.run import stages  # torch: see the module's docstring
        outcome = stages.train(trial, ctx)
    row = results.record(trial, status=outcome.status, error=outcome.error, loss=outcome.loss,
                         message=outcome.message, wall_s=time.perf_counter() - start,
                         attempts=attempts, node=socket.gethostname())
    results.write(ctx.out, row)
    return row
