"""The results dataset: one Parquet file per trial under OUT/results/, one explicit schema.

Results are the source of truth (docs/design.md §5): resume, fitting and the report read them, never
Ray's experiment state. A record is written whole under the trial's own key -- atomically on a file
system (temp name + rename), as one PUT on object storage -- so a reader sees all of it or nothing,
and a re-run of the same trial replaces its file instead of adding a second one. Readers still
de-duplicate by trial_id (preferring ok over diverged over failed, then the latest) and skip an
unreadable file with a warning, so a stray copy or a torn upload never breaks a fit. A file of
another schema (missing columns, or values that do not cast) is skipped the same way, with a
warning naming what it lacks, rather than stopping the command: one foreign file must not block a
fit of hundreds of trials, and the trial it stood for, if any, simply runs again (its new record
replaces the file). Columns added since a file was written (OPTIONAL) read as null instead.
"""

from __future__ import annotations

import io
import json
import time
import warnings

import pyarrow as pa
import pyarrow.parquet as pq

from raysweep import __version__
from raysweep.store import layout, storage

STATUSES = ("ok", "diverged", "failed")

SCHEMA = pa.schema([
    ("trial_id", pa.string()),
    ("stage", pa.string()),                 # pretrain | finetune | distill
    ("upstream", pa.string()),
    ("downstream", pa.string()),            # null for pretrain
    ("heads", pa.int32()),
    ("params", pa.int64()),                 # student parameters
    ("dp", pa.int64()),                     # pretraining images
    ("df", pa.int64()),                     # fine-tuning images; null for pretrain
    ("teacher_heads", pa.list_(pa.int32())),  # empty when none
    ("teacher_params", pa.float64()),       # mean teacher parameters; null when none
    ("seed", pa.int32()),
    ("error", pa.float64()),                # top-1 error on the test split, in [0, 1]
    ("loss", pa.float64()),                 # mean cross-entropy on the test split, nats
    ("status", pa.string()),                # ok | diverged | failed
    ("message", pa.string()),               # why, when not ok
    ("wall_s", pa.float64()),               # seconds inside the trial
    ("flops", pa.float64()),                # training compute, the planner's model (plan.flops)
    ("attempts", pa.int32()),               # executions it took (1 = first try)
    ("node", pa.string()),                  # host that ran it
    ("started_at", pa.timestamp("ms", tz="UTC")),
    ("finished_at", pa.timestamp("ms", tz="UTC")),
    ("code_version", pa.string()),
    ("config", pa.string()),                # the normalised trial config, JSON
])
OPTIONAL = {"flops": pa.float64()}    # columns added later: a file without them reads as null
_RANK = {"ok": 0, "diverged": 1, "failed": 2}


def record(trial, *, status: str, error=None, loss=None, message=None, wall_s=0.0,
           attempts=1, node="") -> dict:
    """A result row for a planned trial (plan.Trial), finished now, started wall_s before."""
    now_ms = int(time.time() * 1000)
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    c = trial.config
    return {
        "trial_id": trial.trial_id, "stage": trial.stage, "upstream": c["upstream"]["name"],
        "downstream": (c.get("downstream") or {}).get("name"), "heads": c["model"]["heads"],
        "params": trial.params, "dp": c["dp"], "df": c.get("df"),
        "teacher_heads": list(c.get("teachers", [])), "teacher_params": trial.teacher_params,
        "seed": c["seed"], "error": error, "loss": loss, "status": status, "message": message,
        "wall_s": float(wall_s), "flops": float(trial.flops), "attempts": attempts, "node": node,
        "started_at": now_ms - int(wall_s * 1000), "finished_at": now_ms,
        "code_version": __version__,
        "config": json.dumps(c, sort_keys=True),
    }


def write(out: str, row: dict) -> None:
    table = pa.Table.from_pylist([row], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(out, layout.result(row["trial_id"]), buf.getvalue())


def read(out: str) -> pa.Table:
    """All records under OUT, one per trial_id; unreadable files are skipped with a warning."""
    tables = []
    for rel in storage.list_files(out, layout.RESULTS, ".parquet"):
        try:
            table = pq.read_table(io.BytesIO(storage.read_bytes(out, rel)))
        except Exception as err:  # noqa: BLE001 - any corrupt file is skipped, never fatal
            warnings.warn(f"skipping unreadable result file {out}/{rel}: {err}", stacklevel=2)
            continue
        for name, kind in OPTIONAL.items():
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(table.num_rows, kind))
        missing = [n for n in SCHEMA.names if n not in table.column_names]
        try:
            if missing:
                raise ValueError(f"it lacks the columns {', '.join(missing)}")
            tables.append(table.select(SCHEMA.names).cast(SCHEMA))
        except Exception as err:  # noqa: BLE001 - as above: one foreign file never stops a fit
            warnings.warn(f"skipping result file {out}/{rel} of another schema: {err} "
                          f"(expected raysweep's results schema, raysweep.store.results.SCHEMA)",
                          stacklevel=2)
    if not tables:
        return SCHEMA.empty_table()
    return dedupe(pa.concat_tables(tables))


def dedupe(table: pa.Table) -> pa.Table:
    """One row per trial_id: ok over diverged over failed, then the latest."""
    best: dict[str, dict] = {}
    for row in table.to_pylist():
        old = best.get(row["trial_id"])
        if old is None or preference(row) > preference(old):
            best[row["trial_id"]] = row
    return pa.Table.from_pylist(list(best.values()), schema=SCHEMA)


def preference(row: dict) -> tuple:
    finished = row["finished_at"]
    return (-_RANK.get(row["status"], 3), finished.timestamp() if finished else 0.0)


def finished_ids(source: str | pa.Table) -> set[str]:
    """Trials that need no re-run: ok or diverged (a failure may be transient, so it runs again).
    SOURCE: an OUT, or a table already read from one."""
    table = read(source) if isinstance(source, str) else source
    return {t for t, s in zip(table["trial_id"].to_pylist(), table["status"].to_pylist())
            if s in ("ok", "diverged")}

