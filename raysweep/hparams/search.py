"""`python -m raysweep.adaptive --target hparams`: hyper-parameters per model size, found by
Optuna's TPE through Ray Tune's OptunaSearch, with ASHA stopping poor candidates early, on the
proxy budget of the sweep's `hparams` section; writes OUT/hparams.yaml for the grid to apply.

One model size is one Optuna study, searched in ascending size: a student's teachers are smaller,
so its distillation candidates learn from teachers that already carry their own tuned values (the
teachers the grid will use). The cost is that sizes are searched one after another; inside a size,
`hparams.concurrent` candidates run at once with the grid's resources for that size.

A candidate runs the trials plan.Planner makes from spec.proxy_sweep, through
raysweep.run.trial.run, into the scratch OUT/hparams/ (results and checkpoints there never mix
with the grid's). Trials every candidate shares (the teachers', and stages no searched setting reaches) run
once before the search, through the grid's executor. Each epoch reports the stage's test error, so
ASHA compares candidates at the same point of the same schedule (upstream error while
pretraining, downstream after); the last report is the objective (hparams.space.objective).
Optuna records a candidate ASHA stopped as PRUNED with its curve, not as finished with a partial
score (ProxySearch), so TPE ranks it below every finished one.

The studies live in OUT/hparams/optuna.db (SQLite through Optuna's RDB storage): `optuna
trials --storage sqlite:///OUT/hparams/optuna.db --study-name NAME` or optuna-dashboard shows them,
and a second call adds trials to them until each holds `--trials` finished ones (resume). A study's
name carries a digest of what its scores depend on, so a changed proxy or space starts afresh.
For object storage the file is fetched first and put back at the end. This module is the search's
Tune edge; it connects and sizes trials through run.cluster, as the grid's executor does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import tempfile
import time

import optuna
import yaml
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from raysweep.hparams import space as hs
from raysweep.run import cluster, executor, track
from raysweep.run import trial as trial_mod
from raysweep.store import layout, results, storage
from raysweep.sweep import plan, spec
from raysweep.sweep.spec import Sweep, SweepError

# ASHA: a candidate runs its whole first stage (grace: that stage's epochs, G), then goes on past
# report G, 3G, 9G, ... only while among the best third there. Not grace 1: mid-warm-up errors
# would judge the warm-up length, not the candidate, and a search stopped that early leaves
# nearly no candidate finished to rank.
REDUCTION = 3
# What a study's scores depend on: a change to any of these starts a new study.
STUDY_KEYS = ("backend", "upstream", "downstream", "model", "seeds", "teachers", "distill", "train")


def target(args, sweep: Sweep, out: str) -> int:
    """The `--target hparams` entry of raysweep.adaptive: search, write the overlay; exit code."""
    try:
        if sweep.hparams is None:
            raise SweepError(sweep.file, "hparams", "no hparams section: add the proxy budget and "
                                                    "search spaces (see sweeps/README.md)")
        trials = getattr(args, "trials", None)
        trials = sweep.hparams.get("trials", hs.DEFAULT_TRIALS) if trials is None else trials
        if trials < 1:
            raise SweepError(sweep.file, "--trials", f"expected >= 1, got {trials}")
        tracker = track.tracker(getattr(args, "track", None), sweep.monitor["project"])
        tuned = search(sweep, out, trials, address=args.address, download=args.download,
                       tracker=tracker)
    except (SweepError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{sweep.name}: best values per model size in {out}/{layout.HPARAMS}; apply with "
          f"python -m raysweep.grid --sweep {sweep.file} --overrides {out}/{layout.HPARAMS}")
    print(yaml.safe_dump(hs.overlay(tuned), sort_keys=False).rstrip())
    return 0


def search(sweep: Sweep, out: str, trials: int, *, address: str | None = None,
           download: bool = False, echo=cluster.say,
           tracker: track.Tracker | None = None) -> dict[int, dict]:
    """Tune every model size in ascending order; OUT/hparams.yaml is rewritten after each.
    `tracker` adds a W&B or MLflow run per candidate (and per shared trial)."""
    cluster.connect(address)
    scratch = storage.absolute(out).rstrip("/") + "/" + layout.HPARAMS_SCRATCH
    cluster.check_storage(scratch)
    # every epoch reported: ASHA's milestones count reports (grace = the first stage's epochs)
    ctx = trial_mod.Context(scratch, sweep.data_root, download=download, report_every_s=0)
    tuned: dict[int, dict] = {}
    with study_storage(scratch) as db:
        for heads in sweep.model["heads"]:
            if not hs.space_for(sweep, heads):
                echo(f"heads={heads}: no searched setting reaches this size (distill.* needs "
                     f"teachers); it keeps the sweep's values")
                continue
            shared = hs.shared_trials(sweep, tuned, heads)
            run_shared(shared, ctx, sweep, address, echo, tracker)
            size = Size(sweep, dict(tuned), heads, {t.trial_id for t in shared}, ctx, tracker)
            tuned[heads] = tune_size(size, db, trials, echo)
            storage.write_bytes(out, layout.HPARAMS, overlay_text(sweep, tuned, scratch).encode())
    return tuned


@dataclasses.dataclass(frozen=True)
class Size:
    """One model size's search: what its candidates are planned from and where they run."""
    sweep: Sweep
    tuned: dict[int, dict]  # best values of the sizes already searched (its teachers among them)
    heads: int
    shared: set[str]        # ids of the trials every candidate has in common (run before)
    ctx: trial_mod.Context  # OUT/hparams/
    tracker: track.Tracker | None = None

    def trials(self, values: dict) -> list[plan.Trial]:
        """The trials a candidate runs itself, in order."""
        proxy = spec.proxy_sweep(self.sweep, self.tuned, self.heads, values)
        return [t for t in hs.trials_of(proxy, self.heads) if t.trial_id not in self.shared]


def run_shared(shared: list[plan.Trial], ctx, sweep: Sweep, address, echo, tracker) -> None:
    executor.run(shared, ctx, name=f"{sweep.name}-hparams-shared", retries=sweep.retries,
                 address=address, echo=echo, tracker=tracker)
    rows = {r["trial_id"]: r for r in results.read(ctx.out).to_pylist()}
    bad = [t.trial_id for t in shared if rows.get(t.trial_id, {}).get("status") != "ok"]
    if bad:
        raise RuntimeError(f"trials every candidate needs did not finish ok: {', '.join(bad)}; "
                           f"see {ctx.out}/results")


@contextlib.contextmanager
def study_storage(scratch: str):
    """Optuna's RDB storage on SCRATCH/optuna.db; SQLite needs a local file, so on object
    storage it is fetched first and put back when the search ends, however it ends."""
    if not storage.is_remote(scratch):
        path = os.path.join(storage.resolve(scratch)[1], layout.STUDY_DB)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        yield optuna.storages.RDBStorage(f"sqlite:///{path}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, layout.STUDY_DB)
        if storage.exists(scratch, layout.STUDY_DB):
            with open(path, "wb") as f:
                f.write(storage.read_bytes(scratch, layout.STUDY_DB))
        try:
            yield optuna.storages.RDBStorage(f"sqlite:///{path}")
        finally:
            with open(path, "rb") as f:
                storage.write_bytes(scratch, layout.STUDY_DB, f.read())


def study_name(sweep: Sweep, heads: int) -> str:
    h = {k: v for k, v in sweep.hparams.items() if k not in ("trials", "concurrent")}
    digest = plan.trial_id({"hparams": h, **{k: sweep.raw.get(k) for k in STUDY_KEYS}})
    return f"{sweep.name}-heads{heads}-{digest[:8]}"


def tune_size(size: Size, db, trials: int, echo) -> dict[str, float]:
    """Run the study of one model size up to `trials` finished candidates; its best values."""
    heads, out = size.heads, size.ctx.out
    name = study_name(size.sweep, heads)
    study = optuna.create_study(storage=db, study_name=name, direction="minimize",
                                load_if_exists=True)
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(stale.number, state=TrialState.FAIL)  # left running by an interrupted search
    done = finished(study)
    if done < trials:
        echo(f"heads={heads}: {done} of {trials} candidates in study {name}; running "
             f"{trials - done}")
        run_study(size, db, name, trials - done, len(study.trials), echo)
    if finished(study) < trials:  # failed candidates (Ctrl-C raises in run_study)
        raise RuntimeError(f"heads={heads}: {finished(study)} of {trials} candidates finished "
                           f"(interrupted, or candidates failed: see {out}/tune); the same "
                           f"command resumes the study")
    try:
        best = study.best_trial
    except ValueError:
        raise RuntimeError(f"no candidate of {heads} heads finished; see {out}/results "
                           f"and study {name}") from None
    echo(f"heads={heads}: best error {best.value:.4f} (trial {best.number} of study {name})")
    return hs.rounded(best.params, hs.space_for(size.sweep, heads))


def finished(study: optuna.Study) -> int:
    """Candidates that count toward --trials: scored, or stopped early by ASHA."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


class ProxySearch(OptunaSearch):
    """OptunaSearch, but a candidate ASHA stopped before its last report is told to Optuna as
    PRUNED (Optuna's own word for it) instead of COMPLETE with an intermediate error as score."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        final = bool(result and result.get("final"))
        super().on_trial_complete(trial_id, result=result if final else None, error=error)


class Echo(tune.Callback):
    """One line per finished candidate: its score or where ASHA stopped it, and its values."""

    def __init__(self, heads: int, total: int, echo):
        self.heads, self.total, self.echo, self.count = heads, total, echo, itertools.count(1)

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        how = (f"error={r['error']:.4f}" if r.get("final") else
               f"stopped at report {r.get('training_iteration')}")
        values = " ".join(f"{k}={v:.3g}" for k, v in sorted(trial.config.items()))
        self.echo(f"[heads={self.heads} {next(self.count)}/{self.total}] {how} {values}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.echo(f"[heads={self.heads} {next(self.count)}/{self.total}] failed: "
                  f"{trial.error_file or 'see the Tune logs'}")


def run_study(size: Size, db, name: str, n: int, seen: int, echo) -> None:
    """One Tune experiment of `n` candidates; `seen` trials are in the study already."""
    sweep, ctx = size.sweep, size.ctx
    space = hs.space_for(sweep, size.heads)
    own = size.trials({k: low for k, (_, low, _) in space.items()})
    reports = sum(hs.epochs_of(t) for t in own) + 1  # every epoch of every stage, then the score
    grace = hs.epochs_of(own[0])
    distributions = {k: optuna.distributions.FloatDistribution(low, high, log=kind == "log")
                     for k, (kind, low, high) in space.items()}
    # Seeded by the trials already in the study, so a resumed search does not replay the first
    # call's random start-up suggestions; not by size, so every size starts from the same random
    # candidates and their best values differ by the size, less by sampling luck. A third of the
    # budget is random start-up (Optuna's default 10 would leave a 12-candidate search to chance).
    sampler = optuna.samplers.TPESampler(seed=sweep.seeds[0] + seen,
                                         n_startup_trials=max(2, (seen + n) // 3))
    searcher = ProxySearch(distributions, metric="error", mode="min", sampler=sampler,
                           study_name=name, storage=db)
    asha = ASHAScheduler(time_attr="training_iteration", metric="error", mode="min",
                         max_t=reports, grace_period=grace, reduction_factor=REDUCTION)
    fn = tune.with_parameters(candidate, size=size)
    sized = cluster.fit_to_cluster(own[:1])[0]
    tuner = tune.Tuner(
        tune.with_resources(fn, cluster.resources_for(sized.resources)),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=asha, num_samples=n,
                                    max_concurrent_trials=sweep.hparams.get(
                                        "concurrent", hs.DEFAULT_CONCURRENT), reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=cluster.tune_storage(ctx.out),
            failure_config=tune.FailureConfig(max_failures=sweep.retries),
            callbacks=[Echo(size.heads, n, echo),
                       *(size.tracker.callbacks(f"{sweep.name}-hparams-heads{size.heads}")
                         if size.tracker else [])], verbose=0, stop=cluster.SigintStopper()))
    with cluster.stop_on_sigint():   # Ctrl-C: KeyboardInterrupt, the command exits 130
        tuner.fit()


def candidate(config: dict, *, size: Size) -> None:
    """The Tune function of one candidate: plan its trials at the suggested values, run those
    not shared, report each epoch's test error, then the score. Its checkpoints are removed after:
    no later trial starts from a candidate's model."""
    ctx = dataclasses.replace(size.ctx)
    own = size.trials(dict(config))
    ctx.device = cluster.worker_device(own[0])
    # Every epoch evaluates: ASHA compares candidates by each report's error. The reports are
    # the grid's (run.stages.epoch_metrics), so a stopped candidate shows as a truncated curve.
    ctx.eval_every = 1
    ctx.on_epoch = lambda t, metrics: tune.report(
        {**metrics, "error": metrics["test_error"], "final": False})
    rows = []
    try:
        for t in own:
            rows.append(trial_mod.run(t, ctx))
            if rows[-1]["status"] != "ok":
                break
        tune.report({"error": hs.objective(rows), "final": True, "phase": "score"})
    finally:
        for t in own:
            for rel in layout.trial_checkpoints(t.trial_id):
                storage.delete(ctx.out, rel)


def overlay_text(sweep: Sweep, tuned: dict[int, dict], scratch: str) -> str:
    """OUT/hparams.yaml with a header saying where it came from and how to apply it."""
    proxy = sweep.hparams["proxy"]
    epochs = ", ".join(f"{k} {v:g}" for k, v in (proxy.get("epochs") or {}).items())
    header = (f"# Best hyper-parameters per model size for sweep {sweep.name!r}, found by\n"
              f"# python -m raysweep.adaptive --target hparams (TPE + ASHA on the proxy Dp="
              f"{proxy['dp']}, Df={proxy['df']}, epochs {epochs or 'as in the grid'}).\n"
              f"# Studies (Optuna, SQLite): {scratch}/{layout.STUDY_DB}\n"
              f"# Apply:   python -m raysweep.grid --sweep {sweep.file} --overrides THIS_FILE\n")
    return header + yaml.safe_dump(hs.overlay(tuned), sort_keys=False)
