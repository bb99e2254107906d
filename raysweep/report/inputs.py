"""Everything the report reads from OUT (a local path or s3://..., through
`raysweep.store.storage`), each part optional: results, fits.json, boundary.json, adaptive.json, hparams.yaml.

A part that is absent or unreadable becomes None plus a sentence saying why, never an exception:
a report of a half-finished sweep is the point. Results come from `raysweep.store.results.read`
(one row per trial id; unreadable files skipped with a warning there). fits.json's law entries
are read as LawEntries (laws/entries.py: a field of the wrong kind makes the file unreadable, named
in the note) and boundary.json's as Slices (laws/slices.py).

Left out: validating the rest of the JSON files (their writers own the schema; the report checks
the top-level shape and reads the rest with defaults).
"""

from __future__ import annotations

import json
import math

import pyarrow as pa
import yaml

from raysweep.laws.entries import typed_doc
from raysweep.laws.slices import Slice
from raysweep.store import layout, results, storage


def _has(key: str, kind: type):
    return lambda v: isinstance(v, dict) and isinstance(v.get(key), kind)


# Optional file under OUT -> (parser, top-level check, what it should be, how to produce it)
OPTIONAL = {
    "fits": (layout.FITS, lambda text: typed_doc(json.loads(text)), _has("downstream", dict),
             "an object with a 'downstream' mapping", "python -m raysweep.fit OUT"),
    "boundary": (layout.BOUNDARY, lambda text: slices_of(json.loads(text)),
                 lambda v: isinstance(v, list),
                 "a list of slices", "python -m raysweep.fit OUT"),
    "adaptive": (layout.ADAPTIVE, json.loads, _has("rounds", list),
                 "an object with a 'rounds' list", "python -m raysweep.adaptive --target boundary"),
    "hparams": (layout.HPARAMS, yaml.safe_load, _has("heads", dict),
                "a mapping with a 'heads' mapping", "the hyper-parameter search"),
}


def slices_of(doc):
    """boundary.json's list as Slices (Slice.from_json: this version's or an older file's);
    anything but a list is handed on as it is, for the shape check to refuse."""
    if not isinstance(doc, list):
        return doc
    return [Slice.from_json(d) for d in doc if isinstance(d, dict)]


def _clean(row: dict) -> dict:
    """NaN -> None, teacher list -> tuple, so grouping and equality work on plain values."""
    row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
           for k, v in row.items()}
    row["teacher_heads"] = tuple(row.get("teacher_heads") or ())
    return row


def read_rows(out: str, notes: list[str], table: pa.Table | None = None) -> list[dict]:
    """Result rows as plain dicts, one per trial id (of TABLE, when the caller read them)."""
    try:
        table = results.read(out) if table is None else table
    except (OSError, ValueError, pa.ArrowException) as err:
        notes.append(f"The results could not be read ({err}); the report shows none.")
        return []
    return [_clean(r) for r in table.to_pylist()]


def read_optional(out: str, name: str, notes: list[str]):
    """The parsed file, or None with a note when it is absent, unreadable or of the wrong shape."""
    filename, parse, check, expected, how = OPTIONAL[name]
    if not storage.exists(out, filename):
        return None
    try:
        value = parse(storage.read_bytes(out, filename).decode("utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        notes.append(f"{filename} could not be read ({err}); rerun {how}.")
        return None
    if not check(value):
        notes.append(f"{filename} is not {expected}; it is left out. Rerun {how}.")
        return None
    return value


def read_inputs(out: str, table: pa.Table | None = None) -> tuple[dict, list[str]]:
    """{"rows": [...], "fits": ..., "boundary": ..., "adaptive": ..., "hparams": ...}, notes.
    TABLE: the results, when the caller has read them already (results.read)."""
    notes: list[str] = []
    inputs = {"rows": read_rows(out, notes, table)}
    for name in OPTIONAL:
        inputs[name] = read_optional(out, name, notes)
    return inputs, notes
