"""Ray Tune's W&B and MLflow logger callbacks as raysweep uses them (raysweep.run.track says
what a tracker run holds and how runs are grouped).

Apart from track.py because importing Ray's two integrations costs a process seconds of CPU, and
track.py is imported by every Tune worker through the executor, while the callbacks run in the
driver of a tracked run only (BENCHMARKS.md, "Worker imports").
"""

from __future__ import annotations

import os

import pyarrow.fs as pafs
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback

# W&B settings a run takes from the driver's environment: the logging actor is a Ray worker,
# which on a running cluster does not inherit the driver's variables (Ray forwards the API key
# alone).
WANDB_FROM_ENV = {"mode": "WANDB_MODE", "entity": "WANDB_ENTITY", "dir": "WANDB_DIR"}
WANDB_FOLDER = "wandb"   # what wandb.init makes in its working directory, the trial's


def stage_of(tune_trial) -> str:
    return str(tune_trial.config.get("stage", "hparams"))


class WandbTracker(WandbLoggerCallback):
    """Ray's W&B callback, with the stage as each run's job type: runs group by sweep, then
    stage.

    A run is written (offline: its wandb/ folder) in the trial's directory on the driver's staging
    path, which Tune copies to its storage path (OUT/tune/...). Tune makes its last copy before it
    calls on_experiment_end, where Ray's callback waits for the runs to finish; so a run still
    being written then -- on a loaded machine, the last trial's -- reached OUT as a bare header.
    Once they have finished, this callback copies the runs' folders itself."""

    def __init__(self, project: str, group: str):
        self.given = {k: os.environ[v] for k, v in WANDB_FROM_ENV.items() if os.environ.get(v)}
        super().__init__(project=project, group=group, **self.given)

    def log_trial_start(self, trial):
        # Ray passes self.kwargs on to wandb.init, run by run: set them for this trial
        self.kwargs = {**self.given, "job_type": stage_of(trial), "tags": [stage_of(trial)]}
        super().log_trial_start(trial)

    def on_experiment_end(self, trials, **info):
        super().on_experiment_end(trials, **info)   # every run finished, or given up on
        for trial in trials:
            copy_runs(trial)


def copy_runs(trial) -> None:
    """The trial's W&B folder on the staging path -> the same folder on its storage path."""
    staged = os.path.join(trial.local_path, WANDB_FOLDER)
    if trial.path and os.path.isdir(staged) and staged != os.path.join(trial.path, WANDB_FOLDER):
        pafs.copy_files(staged, os.path.join(trial.path, WANDB_FOLDER),
                        destination_filesystem=trial.storage.storage_filesystem)


class MLflowTracker(MLflowLoggerCallback):
    """Ray's MLflow callback, with the sweep and the stage as tags of each run. The tracking
    URI is MLflow's own choice: MLFLOW_TRACKING_URI when set."""

    def __init__(self, project: str, group: str):
        super().__init__(experiment_name=project)
        self.group = group

    def log_trial_start(self, trial):
        # Ray copies self.tags into each run it starts: set them for this trial
        self.tags = {"sweep": self.group, "stage": stage_of(trial)}
        super().log_trial_start(trial)


CALLBACKS = {"wandb": WandbTracker, "mlflow": MLflowTracker}
