"""Run planned trials as one Ray Tune experiment (with run.cluster, the grid's Ray edge).

No stage barriers (docs/design.md §2): `ReadySearcher` hands Tune a trial the moment every trial it
depends on has finished, so a fine-tune starts as soon as its own pretraining is done, whatever the
rest of the grid is doing; among ready trials the one heading the costliest chain goes first
(plan.critical_first), so the long chains do not start last. Each trial asks for its model size's
resources (a GPU fraction and CPU threads; the GPU part is dropped on a cluster without GPUs, so the
same sweep runs on a laptop) and sets torch's threads to its CPUs. A trial whose code fails is
retried up to `retries` times (a lost node costs no retry, and a trial Tune gives up on for lost
workers is suggested again, see RESUBMITS); one that still fails is recorded `failed` with its
error, its dependants are recorded `failed` with the reason, and the rest of the grid goes on.
Results are written by the trial itself (store.results); Tune's own experiment state is kept for its
logs and TensorBoard, never read back to resume.

A trial reports to Tune after every epoch (raysweep.run.stages.epoch_metrics), so TensorBoard and
the trackers (raysweep.run.track) draw learning curves while it runs; its last report also
carries the result (`final`: status, error, loss, wall_s), and only that one counts as the
trial's end for the searcher and the progress lines. A trial's Tune config is its labels
(track.labels: what a person compares runs by); the Trial itself reaches the worker through
Ray's object store once, keyed by id, and a worker process deserializes that grid once (`grid`),
not at each trial it runs.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import time
from collections.abc import Callable

import ray
from ray import tune
from ray.tune.search import Searcher

from raysweep.run import cluster, track
from raysweep.run import trial as trial_mod
from raysweep.store import layout, results, storage
from raysweep.sweep.plan import Trial, critical_first

# Trials started or waiting for resources at once: enough to fill a large cluster and to make an
# autoscaler add nodes, few enough that Ray is not flooded with placement groups.
MAX_IN_FLIGHT = 256
# Times a trial is handed to Tune again after Tune gave up on it. Tune gives up only on lost workers
# (a trial's own errors end cleanly, see `trainable`): after `restarts` losses, or at the first one
# when a node dies while Tune is handing the trial a reused worker -- Ray 2.60's TuneController then
# handles the one loss twice, the second time with the trial already pending again, and errors it
# without a restart. A lost worker must cost no retry, so the searcher suggests the trial again.
RESUBMITS = 3


class ReadySearcher(Searcher):
    """Suggests trials whose prerequisites have all succeeded, costliest chain first
    (plan.critical_first).

    Each waiting trial counts its prerequisites not yet ok; one that reaches zero goes on a heap
    of ready trials keyed by its place in critical-first order. So a suggestion pops the heap and
    a finished trial touches its own dependants only, never the whole waiting list: a grid of
    n trials costs O(n log n) in all, where a scan per suggestion cost O(n^2)."""

    def __init__(self, pending: list[Trial], done: set[str], on_skip: Callable[[Trial, str], None]):
        super().__init__()
        order = critical_first(pending)
        self.waiting = {t.trial_id: t for t in order}   # not yet handed to Tune, nor skipped
        self.rank = {t.trial_id: i for i, t in enumerate(order)}
        self.ok = set(done)           # trial ids finished ok (prerequisites satisfied)
        self.dead: set[str] = set()   # failed or diverged: dependants cannot run
        self.running: dict[str, Trial] = {}
        self.resubmits: dict[str, int] = {}   # trial id -> times suggested again after Tune gave up
        self.on_skip = on_skip
        self.children: dict[str, list[str]] = {}  # prerequisite -> waiting trials needing it
        self.unmet: dict[str, int] = {}           # waiting trial -> prerequisites not yet ok
        self.ready: list[tuple[int, str]] = []    # heap of (rank, trial id)
        self.orphans: list[str] = []              # waiting trials with a dead prerequisite
        self.front = 0                            # ranks below 0: trials handed out again
        for t in order:
            unmet = [d for d in t.depends_on if d not in self.ok]
            for d in unmet:
                self.children.setdefault(d, []).append(t.trial_id)
            self.unmet[t.trial_id] = len(unmet)
            if not unmet:
                heapq.heappush(self.ready, (self.rank[t.trial_id], t.trial_id))

    def suggest(self, tune_trial_id: str):
        if cluster.interrupted():   # Ctrl-C: start nothing, and record no orphan as failed
            return Searcher.FINISHED
        self.skip_orphans()
        while self.ready:
            _, tid = heapq.heappop(self.ready)
            t = self.waiting.pop(tid, None)
            if t is not None:         # else skipped since it was pushed
                self.running[tune_trial_id] = t
                return track.labels(t)
        return Searcher.FINISHED if not self.waiting and not self.running else None

    def skip_orphans(self) -> None:
        while self.orphans:
            t = self.waiting.pop(self.orphans.pop(0), None)
            if t is None:
                continue
            bad = next(d for d in t.depends_on if d in self.dead)
            self.died(t.trial_id)
            self.on_skip(t, f"prerequisite {bad} did not finish ok")

    def succeeded(self, tid: str) -> None:
        self.ok.add(tid)
        for child in self.children.pop(tid, ()):
            self.unmet[child] -= 1
            if not self.unmet[child]:
                heapq.heappush(self.ready, (self.rank[child], child))

    def died(self, tid: str) -> None:
        self.dead.add(tid)
        self.orphans += [c for c in self.children.pop(tid, ()) if c in self.waiting]

    # Resume reads the results dataset, never Tune's state (docs/design.md §5): nothing to save.
    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
        # Tune calls this with keyword arguments: the name `trial_id` is part of the API.
        t = self.running.pop(trial_id, None)
        if t is None:
            return
        if error and self.resubmits.get(t.trial_id, 0) < RESUBMITS:   # its worker was lost
            self.resubmits[t.trial_id] = self.resubmits.get(t.trial_id, 0) + 1
            self.waiting[t.trial_id] = t
            self.front -= 1           # ahead of every other ready trial
            heapq.heappush(self.ready, (self.front, t.trial_id))
            return
        status = (result or {}).get("status")
        if not error and status == "ok":
            self.succeeded(t.trial_id)
        else:
            self.died(t.trial_id)


class Progress(tune.Callback):
    """One line per finished trial, and the count with an estimate of the time left."""

    def __init__(self, trials: dict[str, Trial], out: str, echo: Callable[[str], None],
                 given_up: Callable[[str], bool]):
        self.trials, self.total, self.finished = trials, len(trials), 0
        self.out, self.echo = out, echo
        self.given_up = given_up  # trial id -> False while the searcher will suggest it again
        self.start = time.monotonic()

    def line(self, t: Trial, status: str, err: float | None, wall: float) -> None:
        self.finished += 1
        elapsed = time.monotonic() - self.start
        left = elapsed / self.finished * (self.total - self.finished)
        c = t.config
        df = f" Df={c['df']}" if c.get("df") else ""
        teach = f" teachers={c['teachers']}" if c.get("teachers") else ""
        error = f"error={err:.4f}" if err is not None and not math.isnan(err) else status
        self.echo(f"[{self.finished}/{self.total} ~{left:.0f}s left] {t.stage:8s} "
                  f"heads={c['model']['heads']} Dp={c['dp']}{df}{teach} {error} "
                  f"({wall:.1f}s)")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not result.get("final"):  # an epoch's report: the trial goes on
            return
        t = self.trials[trial.config["raysweep_trial_id"]]
        self.line(t, result["status"], result.get("error"), result.get("wall_s", 0.0))

    def on_trial_error(self, iteration, trials, trial, **info):
        t = self.trials[trial.config["raysweep_trial_id"]]
        if not self.given_up(t.trial_id):
            self.echo(f"{t.stage} {t.trial_id}: its worker or node was lost; running it again")
            return
        error = trial.get_error() if hasattr(trial, "get_error") else None
        message = str(error or "").strip() or "its worker or node was lost too many times"
        message = message.splitlines()[-1]
        results.write(self.out, results.record(t, status="failed", message=message[:2000],
                                               attempts=trial.num_failures))
        self.line(t, "failed", None, 0.0)

    def skipped(self, t: Trial, reason: str) -> None:
        results.write(self.out, results.record(t, status="failed", message=reason, attempts=0))
        self.line(t, "skipped", None, 0.0)


# In a worker process: the grid's trials by id, deserialized once per process (Tune reuses a worker
# for many trials), where a get at each trial start unpickled every planned trial each time.
_GRID: dict = {}


def grid(ref: ray.ObjectRef) -> dict[str, Trial]:
    """The trials behind REF (one grid's by id), cached for this process."""
    if ref not in _GRID:
        _GRID.clear()   # a process that ran another grid's trials keeps only this one's
        _GRID[ref] = ray.get(ref)
    return _GRID[ref]


def trainable(config: dict, *, trials: list[ray.ObjectRef], context: dict, retries: int) -> None:
    """The Tune function: run one trial, reporting each epoch, the last one with its record's
    headline numbers.

    The retry budget is kept here, not in Tune: an exception raised by the trial's own code counts
    against `retries` (in OUT/attempts/, so it survives a killed driver); a worker or node that
    disappears (spot preemption) raises nothing here, so Tune's restart of it costs no budget.
    Once the budget is spent the trial is recorded `failed` with its error and ends cleanly.
    """
    t = grid(trials[0])[config["raysweep_trial_id"]]
    ctx = trial_mod.Context(**context)
    share = t.resources.get("GPU", 0)
    ctx.device = cluster.worker_device(t)
    reports = Reports()
    ctx.on_epoch = reports.epoch
    errors = count(ctx.out, layout.attempts(t.trial_id), add=0)
    try:
        row = trial_mod.run(t, ctx, attempts=errors + 1)
    except cluster.oom_errors() as err:
        # Under its cap a trial asks for the same memory on every try: recorded at once, no retry.
        row = results.record(t, status="failed", attempts=errors + 1, message=cluster.oom_message(
            t.trial_id, share, err, cluster.gpu_bytes())[:2000])
        results.write(ctx.out, row)
    except Exception as err:
        errors = count(ctx.out, layout.attempts(t.trial_id), add=1)
        if errors <= retries:
            raise
        message = f"{type(err).__name__}: {err} (after {errors} attempts)"
        row = results.record(t, status="failed", message=message[:2000], attempts=errors)
        results.write(ctx.out, row)
    reports.final({"status": row["status"], "error": nan_if_none(row["error"]),
                   "loss": nan_if_none(row["loss"]), "wall_s": row["wall_s"]})


class Reports:
    """A trial's reports to Tune: one per epoch, the trial's last epoch merged with its result,
    so Tune sees as many reports as the trial had epochs (one, for a trial without epochs).
    A phase's last epoch waits for what follows it: the result, or the next phase's first
    epoch (a distillation guiding the pretraining has two phases)."""

    def __init__(self):
        self.held: dict | None = None

    def epoch(self, _trial: Trial, metrics: dict) -> None:
        if self.held is not None:
            tune.report({**self.held, "final": False})
        self.held = None
        if metrics["steps"] == metrics["total_steps"]:
            self.held = metrics
        else:
            tune.report({**metrics, "final": False})

    def final(self, outcome: dict) -> None:
        tune.report({**(self.held or {}), **outcome, "final": True})
        self.held = None


def nan_if_none(x):
    return float("nan") if x is None else x


def count(out: str, rel: str, add: int) -> int:
    n = int(storage.read_bytes(out, rel)) if storage.exists(out, rel) else 0
    if add:
        storage.write_bytes(out, rel, str(n + add).encode())
    return n + add


def tune_trainable(trials: dict[str, Trial], context: dict, retries: int):
    """`trainable` as Tune registers it. Tune unpickles it for every trial it starts, so it holds
    nothing that grows with the grid: the trials go to Ray's object store once, as a reference in
    a list (with_parameters gets the list at each start, not the trials: see `grid`), and each
    trial's request is read from its config (cluster.request)."""
    fn = tune.with_parameters(trainable, trials=[ray.put(trials)], context=context,
                              retries=retries)
    return tune.with_resources(fn, cluster.request)


def to_run(trials: list[Trial], done: set[str]) -> list[Trial]:
    """The trials without a final result (docs/design.md §1: a finished trial never runs again)."""
    return [t for t in trials if t.trial_id not in done]


def run(trials: list[Trial], ctx: trial_mod.Context, *, name: str, retries: int = 2,
        address: str | None = None, echo: Callable[[str], None] = cluster.say,
        tracker: track.Tracker | None = None, done: set[str] | None = None) -> int:
    """Run every trial of `trials` that has no result yet; returns how many were launched.
    `tracker` adds one run per trial in W&B or MLflow, grouped by `name`. `done`: the ids that
    need no run, when the caller has read OUT already (run.resume); else OUT is read here."""
    done = results.finished_ids(ctx.out) if done is None else done
    pending = to_run(trials, done)
    if not pending:
        return 0
    cluster.connect(address)
    # TensorBoard logging stays on; its note per trial about dropping non-scalar config does not.
    logging.getLogger("ray.tune.logger.tensorboardx").setLevel(logging.WARNING)
    cluster.check_storage(ctx.out)
    pending = cluster.fit_to_cluster(pending)
    searcher = ReadySearcher(pending, done, lambda t, why: progress.skipped(t, why))
    by_id = {t.trial_id: t for t in pending}
    progress = Progress(by_id, ctx.out, echo, given_up=searcher.dead.__contains__)
    # Absolute: Tune runs each trial in its own working directory.
    context = {"out": storage.absolute(ctx.out), "download": ctx.download,
               "data_root": os.path.abspath(ctx.data_root) if ctx.data_root else None,
               "eval_every": ctx.eval_every}
    # Tune restarts whatever dies; our own budget (see `trainable`) decides when to give up.
    restarts = 10 * (retries + 1)
    tuner = tune.Tuner(
        tune_trainable(by_id, context, retries),
        # max_concurrent_trials also sets how many trials Tune keeps pending (placement groups
        # requested ahead of free resources): with a custom searcher it is otherwise 1, and trials
        # would start one by one, each waiting for the previous one's worker to come up.
        tune_config=tune.TuneConfig(search_alg=searcher,
                                    num_samples=len(pending) * (1 + RESUBMITS),
                                    max_concurrent_trials=min(len(pending), MAX_IN_FLIGHT),
                                    reuse_actors=True, trial_name_creator=track.trial_name,
                                    trial_dirname_creator=track.trial_dirname),
        run_config=tune.RunConfig(
            name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=cluster.tune_storage(ctx.out),
            failure_config=tune.FailureConfig(max_failures=restarts),
            callbacks=[progress, *(tracker.callbacks(name) if tracker else [])], verbose=0,
            stop=cluster.SigintStopper()),
    )
    with cluster.stop_on_sigint():   # Ctrl-C: KeyboardInterrupt once Tune has stopped the trials
        tuner.fit()
    return len(pending)


