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
replaces the file). Columns added since a file was written (OPTIONAL) read as null instead
(`id_scheme` as 1, the scheme of the records written before the column).

Each record says how its id was made (`id_scheme`, raysweep.sweep.identity) and which code made
it (`code_version`, `code_source`, `code_commit`: raysweep.store.provenance). `read` keeps the
records of the newest id scheme in OUT, so records of two schemes, which may stand for the same
trial under two ids, are never fitted together; `read_all` keeps them all, for the commands that
decide what to do with the older ones (raysweep.run.resume).
"""

from __future__ import annotations

import io
import json
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raysweep.store import layout, provenance, storage

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
    ("code_version", pa.string()),          # raysweep's package version (store.provenance)
    ("config", pa.string()),                # the resolved trial config, JSON
    ("code_source", pa.string()),           # hash of the source deciding results (provenance)
    ("code_commit", pa.string()),           # git commit it ran from; null outside a checkout
    ("id_scheme", pa.int32()),              # how trial_id was made (sweep.identity.SCHEME)
])
# Columns added later -> (type, what a file without them reads as).
OPTIONAL = {"flops": (pa.float64(), None), "code_source": (pa.string(), None),
            "code_commit": (pa.string(), None), "id_scheme": (pa.int32(), 1)}
_RANK = {"ok": 0, "diverged": 1, "failed": 2}
READ_THREADS = 32   # object-store GETs in flight while reading OUT's records


def record(trial, *, status: str, error=None, loss=None, message=None, wall_s=0.0,
           attempts=1, node="") -> dict:
    """A result row for a planned trial (plan.Trial), finished now, started wall_s before."""
    now_ms = int(time.time() * 1000)
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    c = trial.config
    code = provenance.current()
    return {
        "trial_id": trial.trial_id, "stage": trial.stage, "upstream": c["upstream"]["name"],
        "downstream": (c.get("downstream") or {}).get("name"), "heads": c["model"]["heads"],
        "params": trial.params, "dp": c["dp"], "df": c.get("df"),
        "teacher_heads": list(c.get("teachers", [])), "teacher_params": trial.teacher_params,
        "seed": c["seed"], "error": error, "loss": loss, "status": status, "message": message,
        "wall_s": float(wall_s), "flops": float(trial.flops), "attempts": attempts, "node": node,
        "started_at": now_ms - int(wall_s * 1000), "finished_at": now_ms,
        "code_version": code.version, "code_source": code.source, "code_commit": code.commit,
        "config": json.dumps(c, sort_keys=True), "id_scheme": c.get("id_scheme", 1),
    }


def write(out: str, row: dict) -> None:
    table = pa.Table.from_pylist([row], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(out, layout.result(row["trial_id"]), buf.getvalue())


def read(out: str) -> pa.Table:
    """The records under OUT that are results to use: one per trial_id, of the newest id scheme
    found (`usable`); unreadable files are skipped with a warning."""
    return usable(read_all(out))


def read_all(out: str) -> pa.Table:
    """Every record under OUT, one per trial_id, of any id scheme. On object storage the files
    are fetched READ_THREADS at a time: each GET waits a network round trip, not the CPU."""
    rels = storage.list_files(out, layout.RESULTS, ".parquet")
    if storage.is_remote(out) and len(rels) > 1:
        with ThreadPoolExecutor(READ_THREADS) as pool:
            loaded = list(pool.map(lambda rel: read_file(out, rel), rels))
    else:
        loaded = [read_file(out, rel) for rel in rels]
    tables = []
    for table, problem in loaded:
        if problem:   # warned here, not in a pool's thread, so callers can catch it
            warnings.warn(problem, stacklevel=3)
        else:
            tables.append(table)
    if not tables:
        return SCHEMA.empty_table()
    return dedupe(pa.concat_tables(tables))


def read_file(out: str, rel: str) -> tuple[pa.Table | None, str | None]:
    """(OUT/REL as a table of SCHEMA, None), or (None, why it is skipped)."""
    try:
        table = pq.read_table(io.BytesIO(storage.read_bytes(out, rel)))
    except Exception as err:  # noqa: BLE001 - any corrupt file is skipped, never fatal
        return None, f"skipping unreadable result file {out}/{rel}: {err}"
    for name, (kind, fill) in OPTIONAL.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([fill] * table.num_rows, kind))
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    try:
        if missing:
            raise ValueError(f"it lacks the columns {', '.join(missing)}")
        return filled(table.select(SCHEMA.names).cast(SCHEMA)), None
    except Exception as err:  # noqa: BLE001 - as above: one foreign file never stops a fit
        return None, (f"skipping result file {out}/{rel} of another schema: {err} (expected "
                      f"raysweep's results schema, raysweep.store.results.SCHEMA)")


def filled(table: pa.Table) -> pa.Table:
    """Nulls of an OPTIONAL column with a value to read as (a row written without it) -> it."""
    for name, (_, fill) in OPTIONAL.items():
        if fill is not None and table[name].null_count:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, pc.fill_null(table[name], fill))
    return table


def usable(table: pa.Table) -> pa.Table:
    """The rows of TABLE of its newest id scheme: records of an older scheme may be the same
    trials under other ids, so they are used only while nothing newer is there."""
    if table.num_rows == 0:
        return table
    newest = pc.max(table["id_scheme"]).as_py()
    return table.filter(pc.equal(table["id_scheme"], newest))


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

