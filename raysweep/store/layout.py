"""The layout of OUT: every path a run writes, relative to OUT, in one place.

OUT is a local directory or an object-store prefix (raysweep.store.storage reads and writes both);
these are the relative paths under it. The README's table "What a run leaves in OUT" describes
the same files for users.
"""

from __future__ import annotations

RESULTS = "results"            # results/<trial_id>.parquet: one record per trial (the truth)
CHECKPOINTS = "checkpoints"    # checkpoints/<trial_id>.pt: weights of a finished trial
ATTEMPTS = "attempts"          # attempts/<trial_id>.errors: a trial's own failures so far
FITS = "fits.json"             # the fitted laws with their intervals
BOUNDARY = "boundary.json"     # D*p and D**p per slice
ADAPTIVE = "adaptive.json"     # the adaptive rounds
HPARAMS = "hparams.yaml"       # best hyper-parameters per model size (an overlay for --overrides)
HPARAMS_SCRATCH = "hparams"    # hparams/: the proxy trials' own results and checkpoints
STUDY_DB = "optuna.db"         # hparams/optuna.db: the Optuna studies (SQLite)
REPORT = "report"              # report/report.html, report/report.md, report/figures/*.png
ID_SCHEMES = "id-schemes.json"  # what to do with records of an earlier id scheme (run.resume)
TUNE = "tune"                  # Ray Tune's experiment logs (TensorBoard), local OUT only
PHASES = ("pretrain", "finetune")   # the phases of a trial that keep a per-epoch partial state


def result(trial_id: str) -> str:
    return f"{RESULTS}/{trial_id}.parquet"


def checkpoint(trial_id: str) -> str:
    return f"{CHECKPOINTS}/{trial_id}.pt"


def partial_checkpoint(trial_id: str, phase: str) -> str:
    """The last finished epoch of a running trial's phase, so a killed trial resumes there."""
    return f"{CHECKPOINTS}/{trial_id}.{phase}.partial.pt"


def trial_checkpoints(trial_id: str) -> list[str]:
    """Every checkpoint a trial may leave."""
    return [checkpoint(trial_id)] + [partial_checkpoint(trial_id, p) for p in PHASES]


def attempts(trial_id: str) -> str:
    return f"{ATTEMPTS}/{trial_id}.errors"


def report_file(name: str) -> str:
    return f"{REPORT}/{name}"
