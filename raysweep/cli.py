"""What the commands share: the sweep flags, finding and loading a sweep, and the closing step
(fit, boundary, report) that every command that ran trials ends with.

The commands are `python -m raysweep.grid`, `.adaptive`, `.fit`, `.report` and `.trial`; each is
a short module of its own that parses its flags and calls the packages below it. This module
imports no Ray and trains nothing.
"""

from __future__ import annotations

import argparse
import importlib.resources
from collections import Counter
from pathlib import Path

import yaml
from threadpoolctl import threadpool_limits

from raysweep.laws import study
from raysweep.report import build as report
from raysweep.report import summary
from raysweep.store import results
from raysweep.sweep import spec

# The sweeps that ship inside the package (raysweep/sweeps links to the top-level sweeps/), so
# an installed wheel has its default too.
SHIPPED = importlib.resources.files("raysweep") / "sweeps"
DEFAULT_SWEEP = "default"


def sweep_path(given: str | None) -> Path:
    """--sweep: a file, or the name of a shipped sweep (`smoke`, `paper-cifar10`, ...)."""
    if given is None or (not Path(given).exists() and (SHIPPED / f"{given}.yaml").is_file()):
        return Path(str(SHIPPED / f"{given or DEFAULT_SWEEP}.yaml"))
    return Path(given)


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The flags of every command that runs a sweep's trials."""
    p = argparse.ArgumentParser(prog=prog, description=doc,
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
    p.add_argument("--bootstrap", type=int, default=study.DEFAULT_BOOTSTRAP,
                   help="bootstrap resamples for the fitted laws' intervals (default %(default)s)")
    return p


def load(args) -> tuple[spec.Sweep, str]:
    """The sweep the flags name (overrides merged, --data-root applied) and its OUT."""
    overrides = yaml.safe_load(Path(args.overrides).read_text()) if args.overrides else None
    sweep = spec.load(sweep_path(args.sweep), overrides)
    if args.data_root:
        sweep = spec.dataclasses.replace(sweep, data_root=args.data_root)
    return sweep, args.out or sweep.out or f"runs/{sweep.name}"


def status_summary(out: str) -> str:
    table = results.read(out).to_pylist()
    counts = Counter(r["status"] for r in table)
    lines = ["trials by status: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in results.STATUSES)]
    best: dict[int, float] = {}
    for r in table:
        if r["stage"] != "pretrain" and r["status"] == "ok":
            best[r["heads"]] = min(best.get(r["heads"], 1.0), r["error"])
    for heads in sorted(best):
        lines.append(f"  best downstream error, {heads} heads: {best[heads]:.4f}")
    return "\n".join(lines)


def finish(out: str, bootstrap: int) -> None:
    """Fit, boundary and report: what every command prints and writes when its trials are done.
    One BLAS thread: the bootstrap's many small solves run faster so than on a shared pool."""
    print(status_summary(out))
    with threadpool_limits(1, "blas"):
        print(summary.summarize(out, bootstrap))
    print(f"report: {report.write_report(out)}")
