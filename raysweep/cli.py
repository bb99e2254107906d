"""What the commands share: the sweep flags, finding and loading a sweep, and the closing step
(fit, boundary, report) that every command that ran trials ends with.

The commands are `python -m raysweep.grid`, `.adaptive`, `.fit`, `.report` and `.trial`; each is
a short module of its own that parses its flags and calls the packages below it. This module
imports no Ray and trains nothing.

Before a command starts Ray or writes to OUT it checks what it can check cheaply (`preflight`):
every dataset its trials load (files of the layout, enough training images for the largest Dp
and Df, ImageNet-100's class list) and that OUT can be written. A data root that exists only on
the cluster's nodes is skipped with --no-data-check or RAYSWEEP_SKIP_DATA_CHECK=1.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import shlex
import sys
from collections import Counter
from pathlib import Path

import yaml
from threadpoolctl import threadpool_limits

from raysweep import data
from raysweep.data import cache
from raysweep.errors import InputError
from raysweep.laws import study
from raysweep.report import build as report
from raysweep.report import summary
from raysweep.run import resume
from raysweep.store import results, storage
from raysweep.sweep import gpus, memory, plan, spec

# The sweeps that ship inside the package (raysweep/sweeps links to the top-level sweeps/), so
# an installed wheel has its default too.
SHIPPED = importlib.resources.files("raysweep") / "sweeps"
DEFAULT_SWEEP = "default"
SKIP_DATA_CHECK = "RAYSWEEP_SKIP_DATA_CHECK"   # =1: the same as --no-data-check

# The exit codes of every command that runs trials (also in each --help and the README).
OK, TRIALS_FAILED, BAD_INPUT, INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = """exit codes:
  0    every planned trial finished ok
  1    the command finished, but some trials failed or diverged (their messages: OUT/results,
       column `message`); re-running the same command runs the failed ones again
  2    bad input (sweep, flag, data root, OUT): nothing was started or written
  130  interrupted (Ctrl-C): trials in flight were stopped, finished ones are kept in OUT;
       re-running the same command resumes"""


def sweep_path(given: str | None) -> Path:
    """--sweep: a file, or the name of a shipped sweep (`smoke`, `paper-cifar10`, ...)."""
    if given is None or (not Path(given).exists() and (SHIPPED / f"{given}.yaml").is_file()):
        return Path(str(SHIPPED / f"{given or DEFAULT_SWEEP}.yaml"))
    return Path(given)


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The flags of every command that runs a sweep's trials."""
    p = argparse.ArgumentParser(prog=prog, description=doc, epilog=EXIT_CODES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    shipped = ", ".join(sorted(f.name.removesuffix(".yaml") for f in SHIPPED.iterdir()
                               if f.name.endswith(".yaml")))
    p.add_argument("--sweep", help=f"sweep file, or the name of a shipped sweep ({shipped}; "
                                   f"default: {DEFAULT_SWEEP})")
    p.add_argument("--out", help="output: a directory or s3://bucket/prefix "
                                 "(default: the sweep's `out`, else runs/<sweep name>/)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else local Ray)")
    p.add_argument("--overrides", help="YAML overlay merged over the sweep, e.g. OUT/hparams.yaml")
    p.add_argument("--data-root", help="directory holding real datasets (CIFAR, TinyImageNet, ...)")
    p.add_argument("--download", action="store_true", help="download CIFAR into --data-root")
    p.add_argument("--track", choices=("wandb", "mlflow"),
                   help="also log every trial to an experiment tracker, one run each (needs "
                        "pip install 'raysweep[wandb]' or 'raysweep[mlflow]'; credentials from "
                        "the tracker's own environment variables)")
    p.add_argument("--no-data-check", action="store_true",
                   help=f"skip the check of the datasets before anything starts (for a data root "
                        f"that only the cluster's nodes have; or {SKIP_DATA_CHECK}=1)")
    p.add_argument("--gpu", choices=list(gpus.GPU_TYPES),
                   help="the GPU type the sweep's shares must fit (default: the sweep's `gpu`); "
                        "a share too small for its trials' estimated memory stops the command")
    p.add_argument("--bootstrap", type=int, default=study.DEFAULT_BOOTSTRAP,
                   help="bootstrap resamples for the fitted laws' intervals (default %(default)s)")
    p.add_argument("--verbose", action="store_true",
                   help="print the report's full tables (and each adaptive round's proposals) "
                        "before the summary; they are in OUT/report/report.md either way")
    p.add_argument("--old-ids", choices=resume.OLD_IDS,
                   help="results in OUT whose ids an earlier raysweep made (an earlier id scheme):"
                        " adopt (file each under its id now, it counts as done) or ignore (keep "
                        "them unused, run the trials again); asked for when there are any, then "
                        "kept in OUT")
    p.add_argument("--other-code", choices=resume.OTHER_CODE,
                   help="results in OUT made by other raysweep code: keep (use them; the default"
                        ", but results of a newer raysweep need it said) or rerun (run this "
                        "command's trials among them again)")
    return p


def load(args) -> tuple[spec.Sweep, str]:
    """The sweep the flags name (overrides merged, --data-root applied) and its OUT."""
    overrides = read_overrides(args.overrides) if args.overrides else None
    sweep = spec.load(sweep_path(args.sweep), overrides)
    if args.data_root:
        sweep = spec.dataclasses.replace(sweep, data_root=args.data_root)
    if getattr(args, "gpu", None):
        sweep = spec.dataclasses.replace(sweep, gpu=args.gpu)
    return sweep, args.out or sweep.out or f"runs/{sweep.name}"


def preflight(args, sweep: spec.Sweep, trials: list[plan.Trial], out: str | None) -> None:
    """Stop before Ray starts or OUT is touched: every model size's GPU share must hold its
    trials' estimated memory on the sweep's GPU type (sweep/memory.py), OUT must be writable (when
    given), and every dataset the trials load must be there, with room in this node's split cache
    to decode it. Raises InputError, one line per problem."""
    too_big = memory.problems(trials, sweep.gpu)
    if too_big:
        closing = (f"{len(too_big)} model size(s) do not fit their GPU share: nothing was "
                   f"started or written")
        raise InputError("\n".join([*too_big, closing]))
    if out is not None:
        storage.check_writable(out)
    skip = args.no_data_check or os.environ.get(SKIP_DATA_CHECK, "") not in ("", "0")
    problems = [] if skip else data_problems(sweep, trials, args.download)
    if not skip and not problems:
        problems = cache_problems(sweep, trials)
    if problems:
        skip_hint = (f"{len(problems)} data problem(s): nothing was started or written. A data "
                     f"root that only the cluster's nodes have: skip this check with "
                     f"--no-data-check (or {SKIP_DATA_CHECK}=1)")
        raise InputError("\n".join([*problems, skip_hint]))


def data_problems(sweep: spec.Sweep, trials: list[plan.Trial], download: bool) -> list[str]:
    """data.check for every dataset the trials load, at the most images any trial takes of it."""
    most: dict[tuple[str, str], int] = {}
    for t in trials:
        c = t.config
        if c["backend"] != "train":   # simulated trials load nothing
            continue
        for spec_, n in ((c["upstream"], c["dp"]), (c.get("downstream"), c.get("df"))):
            if spec_:
                key = (spec_["name"], json.dumps(spec_["params"] or {}, sort_keys=True))
                most[key] = max(most.get(key, 0), n)
    return [line for (name, params), n in sorted(most.items())
            for line in data.check(name, json.loads(params), sweep.data_root, n, download)]


def cache_problems(sweep: spec.Sweep, trials: list[plan.Trial]) -> list[str]:
    """Whether this node's split cache (data/cache.py) can take the data sets the trials load,
    decoded at the model's size; the nodes that run them decode the same bytes."""
    entries = {}
    for t in trials:
        c = t.config
        if c["backend"] != "train":
            continue
        m = c["model"]
        for d in (c["upstream"], c.get("downstream")):
            if d:
                root = sweep.data_root if data.DATASETS[d["name"]].layout else None
                name = cache.entry_name(d["name"], data.params_of(d["name"], d["params"]),
                                        _resolved(root), m["image_size"], m["channels"])
                entries[name] = data.cached_bytes(d["name"], d["params"], root,
                                                  m["image_size"], m["channels"])
    return cache.problems(data.cache_dir(), entries) if entries else []


def _resolved(root: str | None) -> str | None:
    """A data root as data.load keys its cache entries: absolute, user expanded."""
    return str(Path(root).expanduser().resolve()) if root else None


def say_error(err: Exception) -> None:
    """An InputError's lines, each as `error: ...` on stderr."""
    for line in str(err).splitlines():
        print(f"error: {line}", file=sys.stderr)


def interrupted(prog: str, argv: list[str] | None, out: str | None) -> int:
    """What Ctrl-C prints: what is kept, and (the last line) the command that resumes."""
    command = shlex.join([*prog.split(), *(sys.argv[1:] if argv is None else argv)])
    kept = f"finished trials are kept in {out}/results" if out else "nothing was lost"
    print(f"interrupted: trials in flight were stopped; {kept}", file=sys.stderr)
    print(f"to resume, re-run the same command: {command}", file=sys.stderr)
    return INTERRUPTED


def resumed(args, out: str, trials: list[plan.Trial]) -> resume.Found:
    """What OUT holds for TRIALS, read once and settled before anything runs (run.resume):
    records of an earlier id scheme (--old-ids), of other code (--other-code)."""
    return resume.check(out, {t.trial_id for t in trials}, args.old_ids, args.other_code)


def outcome(trial_ids: set[str], out: str, table) -> int:
    """OK when every trial of TRIAL_IDS has an ok record in TABLE (OUT's results, read); else
    TRIALS_FAILED, with a line saying how many did not and where their messages are."""
    status = dict(zip(table["trial_id"].to_pylist(), table["status"].to_pylist()))
    bad = Counter(status.get(t, "without a record") for t in trial_ids if status.get(t) != "ok")
    if not bad:
        return OK
    print(f"{sum(bad.values())} of {len(trial_ids)} trials did not finish ok ("
          + ", ".join(f"{n} {s}" for s, n in sorted(bad.items()))
          + f"); their messages are in {out}/results (column `message`); re-running the same "
            f"command runs the failed ones again (a diverged trial is a result: it stays)",
          file=sys.stderr)
    return TRIALS_FAILED


def read_overrides(path: str) -> dict:
    try:
        given = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"--overrides {path}: no such file; expected a YAML overlay such as "
                         f"OUT/hparams.yaml") from None
    except yaml.YAMLError as err:
        raise InputError(f"--overrides {path}: not valid YAML ({' '.join(str(err).split())})"
                         ) from None
    if not isinstance(given, dict):
        raise InputError(f"--overrides {path}: expected a mapping of sweep fields at the top "
                         f"level, got {type(given).__name__}")
    return given


def status_summary(table, verbose: bool = False) -> str:
    """Trials by status; with VERBOSE, the best downstream error per model size too."""
    table = table.to_pylist()
    counts = Counter(r["status"] for r in table)
    lines = ["trials by status: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in results.STATUSES)]
    if not verbose:
        return lines[0]
    best: dict[int, float] = {}
    for r in table:
        if r["stage"] != "pretrain" and r["status"] == "ok":
            best[r["heads"]] = min(best.get(r["heads"], 1.0), r["error"])
    for heads in sorted(best):
        lines.append(f"  best downstream error, {heads} heads: {best[heads]:.4f}")
    return "\n".join(lines)


def finish(out: str, bootstrap: int, offered: dict | None = None, verbose: bool = False):
    """Fit (with the sweep's candidate forms OFFERED), boundary and report: what every command
    prints and writes when its trials are done -- the findings in a screen
    (raysweep.report.summary), the full tables with VERBOSE, and last the report's path. Returns
    the results, read once here for all of them (and for the exit code, `outcome`). One BLAS
    thread: the bootstrap's many small solves run faster so than on a shared pool."""
    table = results.read(out)
    print(status_summary(table, verbose))
    with threadpool_limits(1, "blas"):
        print(summary.summarize(out, bootstrap, offered=offered, verbose=verbose,
                                size_of=data.train_size, table=table))
    print(f"report: {report.write_report(out, table, size_of=data.train_size)}")
    return table
