"""`python -m raysweep.grid`: the main job. Sweep file -> trials -> Ray -> results -> fit -> report.

Runs every trial of a sweep that has no result yet under OUT (so the same command resumes, and
after the grid is done only reports), then fits the laws, locates the distillation boundary and
writes the report. Connects to a running cluster when there is one (--address or RAY_ADDRESS),
else starts Ray locally. With no arguments it runs the embedded default (sweeps/default.yaml:
formula-driven pretraining images -> handwritten digits) on the CPU in minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import yaml

from raysweep import plan, results, spec
from raysweep.trial import Context

REPO_SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"


def default_sweep(name: str = "default.yaml") -> Path:
    local = Path("sweeps") / name
    return local if local.exists() else REPO_SWEEPS / name


def parser(prog: str = "python -m raysweep.grid", doc: str = __doc__) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", help="sweep file (default: sweeps/default.yaml)")
    p.add_argument("--out", help="output: a directory or s3://bucket/prefix "
                                 "(default: the sweep's `out`, else runs/<sweep name>/)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else local Ray)")
    p.add_argument("--overrides", help="YAML overlay merged over the sweep, e.g. OUT/hparams.yaml")
    p.add_argument("--data-root", help="directory holding real datasets (CIFAR, TinyImageNet, ...)")
    p.add_argument("--download", action="store_true", help="download CIFAR into --data-root")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples for the fitted laws' intervals (default 200)")
    return p


def load(args) -> tuple[spec.Sweep, str]:
    overrides = yaml.safe_load(Path(args.overrides).read_text()) if args.overrides else None
    sweep = spec.load(args.sweep or default_sweep(), overrides)
    if args.data_root:
        sweep = spec.dataclasses.replace(sweep, data_root=args.data_root)
    return sweep, args.out or sweep.out or f"runs/{sweep.name}"


def dry_run(trials: list[plan.Trial], as_json: bool) -> str:
    summary = plan.summary(trials)
    summary["compute_flops"] = sum(plan.flops(t) for t in trials)
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
    return "\n".join(lines)


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
    """Fit, boundary and report: what every command prints and writes when its trials are done."""
    print(status_summary(out))
    from raysweep import fit, report

    print(fit.summarize(out, bootstrap))
    print(f"report: {report.write_report(out)}")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    p.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: one JSON object")
    args = p.parse_args(argv)
    try:
        sweep, out = load(args)
        trials = plan.plan(sweep)
        if args.dry_run:
            print(dry_run(trials, args.json))
            return 0
        from raysweep import executor

        n = executor.run(trials, Context(out, sweep.data_root, download=args.download),
                         name=sweep.name, retries=sweep.retries, address=args.address)
        print(f"{sweep.name}: {len(trials)} trials, {n} run now, "
              f"{len(trials) - n} already done; results in {out}/results")
        finish(out, args.bootstrap)
    except (spec.SweepError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
