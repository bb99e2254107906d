"""`python -m raysweep.trial CONFIG`: run one trial from a file, without Ray, for debugging.

CONFIG is a JSON or YAML file holding a trial config, as printed by
`python -m raysweep.grid --dry-run --json` (one entry of "trials") or the `config` column of a
result record. The config is resolved with this code's defaults (raysweep.sweep.identity) and its
id computed from that, so its result and checkpoints land where the grid's would; its
prerequisites' checkpoints must already be in OUT.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from raysweep.errors import InputError
from raysweep.run.trial import Context, run
from raysweep.sweep import identity
from raysweep.sweep.plan import STAGES, Trial


def trial_from_file(path: str) -> Trial:
    """A Trial from a --dry-run --json entry or a result row's config (ids are recomputed)."""
    text = Path(path).read_text()
    # JSON through json: YAML 1.1 reads a number such as 1e-06 (no dot) as a string.
    raw = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    config = raw.get("config", raw)
    if isinstance(config, str):
        config = json.loads(config)
    if config.get("stage") not in STAGES:
        raise InputError(f"{path}: 'stage' must be one of {sorted(STAGES)}, "
                         f"got {config.get('stage')!r}")
    config = identity.resolve(config)
    return Trial(identity.trial_id(config), config["stage"], config, (), {},
                 raw.get("params", 0), raw.get("teacher_params"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m raysweep.trial", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="JSON/YAML file with one trial config")
    parser.add_argument("--out", default="runs/debug", help="output location (path or s3://...)")
    parser.add_argument("--data-root", help="where real datasets live (CIFAR, TinyImageNet, ...)")
    parser.add_argument("--download", action="store_true", help="download CIFAR if missing")
    args = parser.parse_args(argv)
    try:
        trial = trial_from_file(args.config)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        row = run(trial, Context(args.out, args.data_root, device, args.download))
    except (InputError, OSError, KeyError, TypeError, ValueError, json.JSONDecodeError,
            yaml.YAMLError) as err:
        # KeyError, TypeError, ValueError: a config file missing a field, with one of the wrong
        # kind or a value training refuses
        print(f"error: {args.config}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: row[k] for k in ("trial_id", "stage", "status", "error", "loss",
                                           "wall_s", "message")}))
    return 0 if row["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
