"""The results dataset's invariants (docs/design.md §1, §5), on a local directory and on a real S3
server (moto, tests/s3_server.py): one row per trial whatever copies OUT holds; ok over diverged
over failed, then the latest; a trial with an ok or diverged record is never run again, a failed
one is; a record reads back exactly as written. These are the tests the mutation run of
BENCHMARKS.md ("Mutation testing of results, storage and ids") runs."""

import hashlib
import io
import itertools
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysweep import cli
from raysweep.run import executor
from raysweep.run.trial import Context
from raysweep.store import layout, results, storage
from raysweep.sweep import plan, spec

pytest_plugins = ["s3_server"]  # fixtures aws_endpoint, s3_bucket, s3_out (tests/s3_server.py)


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return request.getfixturevalue("s3_out")


def trial(n: int) -> plan.Trial:
    config = {"stage": "finetune", "upstream": {"name": "fractal"},
              "downstream": {"name": "digits"},
              "model": {"heads": 2, "image_size": 16, "patch_size": 4}, "dp": 100 * n, "df": 10,
              "seed": 0, "teachers": [1], "train": {"epochs": 3, "warmup_epochs": 0.5}}
    return plan.Trial(plan.trial_id(config), "finetune", config, (), {"CPU": 1}, 1000 + n, 50.0)


A, B, C, D = (trial(n) for n in range(4))
BY_NAME = {"A": A, "B": B, "C": C, "D": D}


def row(t: plan.Trial, status: str, finished_s: int) -> dict:
    r = results.record(t, status=status, error=0.25, loss=1.5, message=f"{status}@{finished_s}",
                       wall_s=2.0, attempts=3, node="n1")
    return r | {"finished_at": finished_s * 1000}


def put(out: str, name: str, r: dict) -> None:
    """A copy of a record under another name: what a stray copy or an old layout leaves."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([r], schema=results.SCHEMA), buf)
    storage.write_bytes(out, f"{layout.RESULTS}/{name}.parquet", buf.getvalue())


# trial -> its copies (status, finished at, s) and the one the readers must keep
COPIES = {
    "A": ([("failed", 30), ("ok", 10), ("diverged", 20), ("ok", 20)], "ok@20"),  # ok, then latest
    "B": ([("failed", 50), ("diverged", 10)], "diverged@10"),                    # diverged > failed
    "C": ([("failed", 10), ("failed", 40)], "failed@40"),                        # the latest
    "D": ([("ok", 5)], "ok@5"),
}


@pytest.mark.parametrize("order", [0, 1, 2])
def test_one_row_per_trial_ok_over_diverged_over_failed_then_the_latest(out, order):
    copies = [(BY_NAME[t], s, f) for t, (cs, _) in COPIES.items() for s, f in cs]
    copies = [copies, copies[::-1], copies[1::2] + copies[::2]][order]   # in any file order
    for i, (t, status, finished) in enumerate(copies):
        put(out, f"{i:02d}-copy", row(t, status, finished))
    table = results.read(out)
    assert table.num_rows == len(COPIES) == len(set(table["trial_id"].to_pylist()))
    kept = {r["trial_id"]: r["message"] for r in table.to_pylist()}
    assert kept == {BY_NAME[t].trial_id: want for t, (_, want) in COPIES.items()}
    assert results.finished_ids(out) == {A.trial_id, B.trial_id, D.trial_id}
    assert results.finished_ids(table) == results.finished_ids(out)


def as_read(*rows: dict) -> list[dict]:
    """Rows as a reader sees them (timestamps as datetimes)."""
    return pa.Table.from_pylist(list(rows), schema=results.SCHEMA).to_pylist()


def preference(r: dict) -> tuple:
    return results.preference(as_read(r)[0])


def test_the_preference_ranks_every_status_pair_and_then_time():
    for better, worse in itertools.combinations(results.STATUSES, 2):   # in preference order
        assert preference(row(A, better, 1)) > preference(row(A, worse, 99))
    late, early = row(A, "failed", 9), row(A, "failed", 8)
    assert preference(late) > preference(early)
    table = pa.Table.from_pylist([early, late], schema=results.SCHEMA)
    assert results.dedupe(table).to_pylist()[0]["message"] == "failed@9"
    undated = row(A, "ok", 1) | {"finished_at": None}
    assert preference(undated) < preference(row(A, "ok", 1))


def test_a_tie_keeps_the_first_copy_read():
    first, second = row(A, "ok", 7), row(A, "ok", 7) | {"message": "second"}
    table = pa.Table.from_pylist([first, second], schema=results.SCHEMA)
    assert results.dedupe(table).to_pylist()[0]["message"] == "ok@7"


def test_a_record_reads_back_as_written(out):
    written = row(A, "diverged", 12)
    results.write(out, written)
    assert storage.list_files(out, layout.RESULTS) == [layout.result(A.trial_id)]
    (back,) = results.read(out).to_pylist()
    assert back["finished_at"].timestamp() == 12 and back["started_at"] is not None
    for key in ("trial_id", "stage", "upstream", "downstream", "heads", "params", "dp", "df",
                "teacher_heads", "teacher_params", "seed", "error", "loss", "status", "message",
                "wall_s", "attempts", "node", "code_version"):
        assert back[key] == written[key], key
    assert json.loads(back["config"]) == A.config
    assert (back["teacher_heads"], back["downstream"], back["dp"]) == ([1], "digits", 0)


def test_a_new_record_of_a_trial_replaces_its_file(out):
    results.write(out, row(A, "failed", 1))
    results.write(out, row(A, "ok", 2))
    assert storage.list_files(out, layout.RESULTS) == [layout.result(A.trial_id)]
    assert results.read(out).to_pylist()[0]["message"] == "ok@2"


def test_an_empty_or_missing_out_has_no_rows_and_nothing_finished(out):
    assert results.read(out).num_rows == 0 and results.read(out).schema == results.SCHEMA
    assert results.finished_ids(out) == set()


def test_a_record_with_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status 'done' is not one of"):
        results.record(A, status="done")


def test_a_finished_trial_is_never_run_again_and_a_failed_one_is(out):
    for t, status in ((A, "ok"), (B, "diverged"), (C, "failed")):
        results.write(out, row(t, status, 1))
    done = results.finished_ids(out)
    assert [t.trial_id for t in executor.to_run([A, B, C, D], done)] == [C.trial_id, D.trial_id]
    # all finished: the executor returns before it connects to any Ray
    assert executor.run([A, B], Context(out), name="none-left", address="127.0.0.1:1") == 0


def test_unreadable_copies_are_skipped_and_the_rest_kept(out):
    results.write(out, row(A, "ok", 1))
    storage.write_bytes(out, f"{layout.RESULTS}/torn.parquet", b"PAR1 torn")
    with pytest.warns(UserWarning, match="skipping unreadable result file .*torn.parquet"):
        table = results.read(out)
    assert table["trial_id"].to_pylist() == [A.trial_id]


def test_a_trial_id_is_a_known_hash_of_its_config_whatever_the_key_order():
    config = {"stage": "pretrain", "dp": 500, "model": {"heads": 2, "depth": 12}, "seed": 0}
    assert plan.trial_id(config) == "2306bd23e3566c54"            # sha256 of compact sorted JSON
    shuffled = {"seed": 0, "model": {"depth": 12, "heads": 2}, "dp": 500, "stage": "pretrain"}
    assert plan.trial_id(shuffled) == "2306bd23e3566c54"
    assert plan.trial_id({**config, "dp": 501}) != plan.trial_id(config)


@pytest.mark.parametrize("name, count, digest", [
    ("smoke", 22, "6d8074fb298b4716"), ("default", 200, "3f3efc16986e2811"),
    ("simulate", 175, "519caf2a1ade41f1"),
])
def test_the_shipped_sweeps_keep_their_trial_ids(name, count, digest):
    """Ids name results already on disk: a change here orphans every OUT (§1), so it is a new
    id scheme (sweep.identity.SCHEME; these are scheme 2's), whose commands then ask what to do
    with the records of the earlier one (--old-ids)."""
    ids = sorted(t.trial_id for t in plan.plan(spec.load(cli.sweep_path(name))))
    assert len(ids) == count
    assert hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16] == digest


def test_a_record_finishes_now_started_its_wall_time_before_with_its_config_sorted():
    before = time.time()
    r = results.record(A, status="ok", error=0.1, wall_s=2.5)
    assert before - 1 <= r["finished_at"] / 1000 <= time.time() + 1
    assert r["finished_at"] - r["started_at"] == 2500
    assert (r["attempts"], r["node"], r["wall_s"], r["message"]) == (1, "", 2.5, None)
    assert r["config"] == json.dumps(A.config, sort_keys=True) != json.dumps(A.config)


def test_a_file_of_another_schema_is_skipped_naming_what_it_lacks(out):
    results.write(out, row(A, "ok", 1))
    buf = io.BytesIO()
    pq.write_table(pa.table({"trial_id": [B.trial_id], "status": ["ok"]}), buf)
    storage.write_bytes(out, f"{layout.RESULTS}/foreign.parquet", buf.getvalue())
    with pytest.warns(UserWarning, match="foreign.parquet of another schema: it lacks the "
                                         "columns stage, upstream"):
        table = results.read(out)
    assert table["trial_id"].to_pylist() == [A.trial_id]
    assert results.finished_ids(table) == {A.trial_id}      # B will run (again)


def test_a_record_carries_the_planners_compute_and_an_older_file_without_it_reads_as_null(out):
    r = results.record(A, status="ok", error=0.1)
    # 6 FLOPs per parameter per token, 17 tokens (16 patches + the class token), 3 epochs of 10
    # images, plus 2 per teacher parameter per token for the one teacher's forwards
    assert r["flops"] == A.flops == (6 * 1000 + 2 * 50.0) * 17 * 3 * 10
    results.write(out, r)
    old = pa.Table.from_pylist([row(B, "ok", 1)], schema=results.SCHEMA).drop_columns(["flops"])
    buf = io.BytesIO()
    pq.write_table(old, buf)
    storage.write_bytes(out, layout.result(B.trial_id), buf.getvalue())
    got = {x["trial_id"]: x["flops"] for x in results.read(out).to_pylist()}
    assert got == {A.trial_id: A.flops, B.trial_id: None}
