"""What a person watching a sweep sees of each trial in Tune's logs and in an experiment tracker:
its name, its parameters, and (`--track wandb|mlflow`) one tracker run per trial through Ray
Tune's own logger callbacks, fed by the per-epoch reports (raysweep.run.executor).

A trial's Tune config is `labels(trial)` -- stage, heads, params, Dp, Df, teachers, seed, trial
id, code version, and its request of the cluster (CPUs, GPU share) -- so TensorBoard's hparams
table, W&B's config and MLflow's parameters show those and nothing else; the full config stays in
the results record. A tracker run is grouped by
the sweep's name (W&B group; MLflow tag `sweep`) and stage (W&B job type; MLflow tag `stage`),
in the sweep's `monitor.project` (W&B project, MLflow experiment). Credentials and servers come
from each tool's own environment (WANDB_API_KEY, WANDB_MODE, MLFLOW_TRACKING_URI, ...), never
from the sweep file. The trackers are optional extras, imported only when asked for; Ray's
callbacks for them are in raysweep.run.trackers.

Left out: uploading checkpoints to a tracker (they live in OUT, the results' one home).
"""

from __future__ import annotations

import dataclasses
import importlib

from raysweep import __version__
from raysweep.errors import InputError
from raysweep.sweep.plan import Trial

# --track name -> (the module it needs, the extra that installs it)
TRACKERS = {"wandb": ("wandb", "raysweep[wandb]"), "mlflow": ("mlflow", "raysweep[mlflow]")}


def labels(trial: Trial) -> dict:
    """The parameters a person compares trials by (the Tune config of a grid trial), and what it
    asks of the cluster: Tune's resource request is read from them (run.cluster.request)."""
    c = trial.config
    # not "trial_id": Tune fills that in with its own id, and W&B's callback lets it win
    out = {"stage": trial.stage, "heads": c["model"]["heads"], "params": trial.params,
           "dp": c["dp"], "df": c.get("df"), "seed": c["seed"],
           "raysweep_trial_id": trial.trial_id, "code_version": __version__,
           "cpus": trial.resources.get("CPU", 1), "gpu_share": trial.resources.get("GPU", 0)}
    if c.get("teachers"):
        out["teachers"] = "+".join(map(str, c["teachers"]))
    return {k: v for k, v in out.items() if v is not None}


def name(config: dict) -> str:
    """'finetune_h4_dp1000_df143_s0_1a2b3c4d' from labels(): readable in TensorBoard's run list,
    with the id's head to tell repeats apart."""
    parts = [config["stage"], f"h{config['heads']}"]
    parts += [f"t{config['teachers']}"] if "teachers" in config else []
    parts += [f"dp{config['dp']}"] + ([f"df{config['df']}"] if "df" in config else [])
    return "_".join(parts + [f"s{config['seed']}", config["raysweep_trial_id"][:8]])


def trial_name(tune_trial) -> str:
    return name(tune_trial.config)


def trial_dirname(tune_trial) -> str:
    """The name and Tune's own id: a trial Tune gave up on and the searcher suggested again
    gets a second directory, not a share of the first."""
    return f"{name(tune_trial.config)}_{tune_trial.trial_id}"


@dataclasses.dataclass(frozen=True)
class Tracker:
    kind: str      # a key of TRACKERS
    project: str   # W&B project, MLflow experiment

    def callbacks(self, group: str) -> list:
        """Tune callbacks making one run per trial, grouped by `group` (the sweep's name)."""
        from raysweep.run import trackers  # Ray's integrations: see trackers.py
        return [trackers.CALLBACKS[self.kind](self.project, group)]


def tracker(kind: str | None, project: str) -> Tracker | None:
    """--track KIND, checked before anything runs: a known name whose package is installed."""
    if kind is None:
        return None
    if kind not in TRACKERS:
        raise InputError(f"--track {kind!r}: expected one of {sorted(TRACKERS)}")
    module, extra = TRACKERS[kind]
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise InputError(f"--track {kind} needs {module}, which is not installed ({err}): "
                         f"pip install '{extra}'") from None
    return Tracker(kind, project)
