"""A sweep's trials as id scheme 1 named them (raysweep before ids hashed the resolved config):
the config the planner wrote then -- the sweep's stage settings only, dataset params and the
simulate section as given -- and the hash of it. For the tests of adopting such records."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq

from raysweep.store import layout, results, storage
from raysweep.sweep import plan
from raysweep.sweep.spec import Sweep

NEW_COLUMNS = ("code_source", "code_commit", "id_scheme")   # absent from scheme-1 records


def legacy_id(config: dict) -> str:
    """The id scheme 1 gave CONFIG (as written then): the hash of the config as it was."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def legacy_config(t: plan.Trial, sweep: Sweep, old_ids: dict[str, str]) -> dict:
    c = {k: v for k, v in t.config.items() if k != "id_scheme"}
    down = next((d for d in sweep.downstream if d.name == c.get("downstream", {}).get("name")),
                None)
    finetune = {**sweep.train["finetune"], **(down.finetune if down else {})}
    c["train"] = {"pretrain": sweep.train["pretrain"], "finetune": finetune,
                  "distill": {**sweep.train["distill"], **(down.finetune if down else {})}
                  }[t.stage]
    if t.stage == "distill" and c["distill"]["stage"] == "pretrain":
        c["train"] = {"pretrain": sweep.train["pretrain"], "finetune": finetune}
    c["upstream"] = {"name": sweep.upstream.name, "params": sweep.upstream.params}
    if down:
        c["downstream"] = {"name": down.name, "params": down.params}
    if sweep.simulate is not None:
        c["simulate"] = sweep.simulate
    if "pretrained" in c:
        c["pretrained"] = old_ids[c["pretrained"]]
    if "teacher_trials" in c:
        c["teacher_trials"] = [old_ids[d] for d in c["teacher_trials"]]
    return c


def legacy_trials(sweep: Sweep) -> dict[str, tuple[str, dict]]:
    """{trial id now: (its scheme-1 id, its scheme-1 config)} of SWEEP's plan."""
    old_ids, out = {}, {}
    for t in plan.plan(sweep):                      # prerequisites come first in a plan
        c = legacy_config(t, sweep, old_ids)
        old_ids[t.trial_id] = legacy_id(c)
        out[t.trial_id] = (old_ids[t.trial_id], c)
    return out


def write_legacy_records(out: str, sweep: Sweep, status: str = "ok") -> dict[str, str]:
    """Scheme-1 records (the columns of then) of every trial of SWEEP; {id now: old id}."""
    old_schema = pa.schema([f for f in results.SCHEMA if f.name not in NEW_COLUMNS])
    by_id = {t.trial_id: t for t in plan.plan(sweep)}
    mapping = {}
    for now, (old, config) in legacy_trials(sweep).items():
        t = by_id[now]
        row = results.record(plan.Trial(old, t.stage, config, (), {}, t.params,
                                        t.teacher_params), status=status, error=0.3, loss=1.0)
        row = {k: v for k, v in row.items() if k not in NEW_COLUMNS} | {"code_version": "0.1.0"}
        assert json.loads(row["config"]) == config
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist([row], schema=old_schema), buf)
        storage.write_bytes(out, layout.result(old), buf.getvalue().to_pybytes())
        mapping[now] = old
    return mapping
