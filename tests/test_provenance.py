"""Code provenance (raysweep.store.provenance): the fingerprint changes with any source file
that decides a result and with nothing else, a record carries it, and an older record without
it reads as what it is."""

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysweep import cli
from raysweep.store import layout, provenance, results, storage
from raysweep.sweep import plan, spec


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A copy of the raysweep package, outside any git checkout."""
    root = tmp_path_factory.mktemp("copy") / "raysweep"
    shutil.copytree(provenance.PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"),
                    symlinks=True)
    return root


def edited(package: Path, rel: str) -> str:
    """The source hash after one more line in PACKAGE/REL, which is then restored."""
    path = package / rel
    before = path.read_bytes()
    try:
        path.write_bytes(before + b"# an edit\n")
        return provenance.source_hash(package)
    finally:
        path.write_bytes(before)


@pytest.mark.parametrize("group", sorted(provenance.SOURCES))
def test_every_file_of_every_hashed_group_changes_the_fingerprint(package, group):
    base = provenance.source_hash(package)
    assert base == provenance.source_hash(provenance.PACKAGE)
    files = [f for f in provenance.source_files(package)
             if any(f.relative_to(package).as_posix().startswith(e)
                    for e in provenance.SOURCES[group])]
    assert files
    for f in files:
        assert edited(package, f.relative_to(package).as_posix()) != base, f


@pytest.mark.parametrize("rel", ["sweep/plan.py", "report/render.py", "laws/fitting.py",
                                 "cli.py"])
def test_code_that_decides_no_result_leaves_the_fingerprint(package, rel):
    assert edited(package, rel) == provenance.source_hash(package)


def test_the_commit_is_the_checkout_s_and_none_outside_one(package):
    head = subprocess.run(["git", "-C", str(provenance.PACKAGE), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert provenance.git_commit() == head
    assert provenance.git_commit(package) is None


def test_a_record_carries_this_code_and_its_id_scheme_and_an_old_one_reads_as_scheme_1(
        tmp_path):
    out = str(tmp_path)
    trial = plan.plan(spec.load(cli.sweep_path("smoke")))[0]
    row = results.record(trial, status="ok", error=0.5)
    code = provenance.current()
    assert (row["code_version"], row["code_source"], row["code_commit"], row["id_scheme"]) == \
        (code.version, code.source, code.commit, 2)
    old = {k: v for k, v in row.items() if k not in ("code_source", "code_commit", "id_scheme")}
    schema = pa.schema([f for f in results.SCHEMA if f.name in old])
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([old], schema=schema), buf)
    storage.write_bytes(out, layout.result("old"), buf.getvalue().to_pybytes())
    (back,) = results.read_all(out).to_pylist()
    assert (back["id_scheme"], back["code_source"], back["code_commit"]) == (1, None, None)
    assert provenance.of_row(back).label() == "raysweep 0.1.0, source (not hashed)"


# What decides a result, by the words: training, data, running a trial, simulation.
DECIDING = ["train/loop.py", "train/losses.py", "train/models.py", "train/settings.py",
            "train/augment.py", "data/load.py", "data/fractal.py", "data/real.py",
            "data/__init__.py", "run/trial.py", "run/stages.py", "sweep/simulate.py"]


@pytest.mark.parametrize("rel", DECIDING)
def test_an_edit_of_any_file_that_decides_a_result_changes_the_fingerprint(package, rel):
    assert edited(package, rel) != provenance.source_hash(package)
