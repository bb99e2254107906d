"""Bad input, row by row, through the real commands (their main(), or a subprocess where the row
needs a process of its own): each exits 2 with a message that names the thing and what was
expected, before Ray starts, and leaves OUT byte for byte as it was (hashed before and after; a
missing OUT stays missing). Two rows are not bad input but damaged OUT: a corrupt result file
and one of another schema are skipped with a warning, and the command goes on (exit 0).

Running as root, chmod does not stop a write; an OUT whose parent is a regular file does: no
user can create a directory below a file.
"""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from test_data import _cifar10, _imagenet100

from raysweep import grid
from raysweep.adaptive import __main__ as adaptive_cli
from raysweep.run import trial as trial_mod
from raysweep.sweep import plan, spec

ROOT = Path(__file__).parent.parent
SMOKE = {k: v for k, v in yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text()).items()
         if k != "hparams"}
# torchvision 0.29 deprecates its JPEG encoder for TorchCodec (not a dependency).
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")

SIM = yaml.safe_load((ROOT / "sweeps" / "simulate.yaml").read_text())
TINY_SIM = {**SIM, "name": "tiny-sim", "model": {**SIM["model"], "heads": [2, 4]},
            "dp": [0.05, 1.0], "df": [1.0], "teachers": {4: [[2]]}}


def tree_hash(path: Path) -> str | None:
    """sha256 over every file's relative path and bytes (a file: its bytes); None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def sweep_file(tmp: Path, name: str, base: dict, **changes) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**base, "name": name, **changes}))
    return str(path)


def filled_out(tmp: Path) -> Path:
    """An OUT that already holds work: the tiny simulated grid's records (answered in-process,
    no Ray) and a note of the user's."""
    out = tmp / "out"
    for t in plan.plan(spec.parse(TINY_SIM)):
        trial_mod.run(t, trial_mod.Context(str(out)))
    (out / "notes.txt").write_text("mine")
    return out


def cifar_sweep(tmp):
    return sweep_file(tmp, "cifar", SMOKE, downstream=["cifar10"], model={**SMOKE["model"],
                      "heads": [1]}, teachers={})


def imagenet_sweep(tmp):
    return sweep_file(tmp, "in100", SMOKE, upstream={"name": "imagenet100"}, dp=[1.0],
                      model={**SMOKE["model"], "heads": [1]}, teachers={})


def cifar_missing_a_batch(tmp):
    _cifar10(tmp / "data")
    (tmp / "data" / "cifar-10-batches-py" / "data_batch_3").unlink()
    return str(tmp / "data")


def imagenet_root(tmp, classes=100):
    _imagenet100(tmp / "data")
    if classes != 100:
        lines = (tmp / "data" / "imagenet100.txt").read_text().split()
        (tmp / "data" / "imagenet100.txt").write_text("\n".join(lines[:classes]))
    return str(tmp / "data")


def grid_cmd(*argv):
    return grid.main, list(argv)


def adaptive_cmd(*argv):
    return adaptive_cli.main, ["--target", "boundary", *argv]


# id -> (argv builder(tmp, out) -> (main, argv), OUT: "filled" | "absent" | "under-a-file",
#        words the message must hold)
ROWS = {
    "sweep file missing": (lambda tmp, out: grid_cmd("--sweep", str(tmp / "no.yaml"),
                                                     "--out", out), "filled",
                           ["no.yaml", "no such sweep file"]),
    "sweep not YAML": (lambda tmp, out: grid_cmd("--sweep", write(tmp / "b.yaml", "dp: [1,\n"),
                                                 "--out", out), "filled",
                       ["b.yaml", "not valid YAML"]),
    "sweep unknown field": (lambda tmp, out: grid_cmd(
        "--sweep", sweep_file(tmp, "u", SMOKE, epochs=3), "--out", out), "filled",
        ["u.yaml", "epochs"]),
    "sweep amount out of range": (lambda tmp, out: grid_cmd(
        "--sweep", sweep_file(tmp, "a", SMOKE, dp=[0.5, 2.0]), "--out", out), "filled",
        ["a.yaml", "dp[1]"]),
    "unknown dataset": (lambda tmp, out: grid_cmd(
        "--sweep", sweep_file(tmp, "d", SMOKE, downstream=["mnist"]), "--out", out), "filled",
        ["d.yaml", "downstream[0].name", "unknown dataset 'mnist'", "expected one of"]),
    "unknown model key": (lambda tmp, out: grid_cmd(
        "--sweep", sweep_file(tmp, "m", SMOKE, model={**SMOKE["model"], "width": 3}),
        "--out", out), "filled", ["m.yaml", "model.width", "unknown key"]),
    "teacher not smaller": (lambda tmp, out: grid_cmd(
        "--sweep", sweep_file(tmp, "t", SMOKE, teachers={2: [[2]]}), "--out", out), "filled",
        ["t.yaml", "teachers.2[0]", "not smaller than its 2-head student"]),
    "overrides for a size the sweep lacks": (lambda tmp, out: grid_cmd(
        "--sweep", "smoke", "--overrides", write(tmp / "h.yaml", "heads: {6: {finetune.lr: "
                                                 "1.0e-3}}\n"), "--out", out), "filled",
        ["heads.6", "expected one of model.heads"]),
    "overrides missing": (lambda tmp, out: grid_cmd(
        "--sweep", "smoke", "--overrides", str(tmp / "h.yaml"), "--out", out), "filled",
        ["--overrides", "h.yaml", "no such file", "expected a YAML overlay"]),
    "overrides not a mapping": (lambda tmp, out: grid_cmd(
        "--sweep", "smoke", "--overrides", write(tmp / "h.yaml", "- 1\n"), "--out", out),
        "filled", ["--overrides", "expected a mapping", "got list"]),
    "data root missing": (lambda tmp, out: grid_cmd(
        "--sweep", cifar_sweep(tmp), "--data-root", str(tmp / "nowhere"), "--out", out),
        "filled", ["cifar10: data root", "nowhere", "does not exist", "cifar-10-batches-py",
                   "--no-data-check"]),
    "data root missing, no OUT yet": (lambda tmp, out: grid_cmd(
        "--sweep", cifar_sweep(tmp), "--data-root", str(tmp / "nowhere"), "--out", out),
        "absent", ["cifar10: data root", "does not exist"]),
    "data root missing, --dry-run": (lambda tmp, out: grid_cmd(
        "--sweep", cifar_sweep(tmp), "--data-root", str(tmp / "nowhere"), "--dry-run"),
        "filled", ["cifar10: data root", "does not exist"]),
    "data root missing, adaptive": (lambda tmp, out: adaptive_cmd(
        "--sweep", cifar_sweep(tmp), "--data-root", str(tmp / "nowhere"), "--out", out),
        "filled", ["cifar10: data root", "does not exist"]),
    "data root lacks a file": (lambda tmp, out: grid_cmd(
        "--sweep", cifar_sweep(tmp), "--data-root", cifar_missing_a_batch(tmp), "--out", out),
        "filled", ["cifar10: missing file", "data_batch_3", "--download"]),
    "data root too small for Dp": (lambda tmp, out: grid_cmd(
        "--sweep", imagenet_sweep(tmp), "--data-root", imagenet_root(tmp), "--out", out),
        "filled", ["imagenet100", "holds 100 training images", "126,689"]),
    "class list not 100 classes": (lambda tmp, out: grid_cmd(
        "--sweep", imagenet_sweep(tmp), "--data-root", imagenet_root(tmp, 99), "--out", out),
        "filled", ["imagenet100", "imagenet100.txt", "names 99 distinct classes, expected 100"]),
    "OUT under a regular file": (lambda tmp, out: grid_cmd("--sweep", "smoke", "--out", out),
                                 "under-a-file", ["output location",
                                                  "is a file, not a directory",
                                                  "expected a directory"]),
    "OUT of an unknown scheme": (lambda tmp, out: grid_cmd("--sweep", "smoke", "--out",
                                                           "hdfs://nn/runs"), "filled",
                                 ["hdfs://nn/runs", "scheme 'hdfs'", "s3://"]),
    "adaptive budget negative": (lambda tmp, out: adaptive_cmd("--sweep", "smoke", "--budget",
                                                               "-1", "--out", out), "filled",
                                 ["--budget '-1'", "expected a number of trials (120)",
                                  "FLOPs (2e18", "GPU-hours (40gpuh)"]),
    "adaptive unknown target": (lambda tmp, out: (adaptive_cli.main, [
        "--target", "frontier", "--out", out]), "filled", ["unknown --target 'frontier'",
                                                          "boundary", "hparams"]),
}


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("row", ROWS)
def test_bad_input_exits_2_names_it_and_leaves_out_as_it_was(row, tmp_path, capsys):
    build, state, words = ROWS[row]
    if state == "filled":
        out = filled_out(tmp_path)
    elif state == "under-a-file":
        (tmp_path / "afile").write_text("a file")
        out = tmp_path / "afile" / "out"
    else:
        out = tmp_path / "out"
    watched = tmp_path / "afile" if state == "under-a-file" else out
    before = tree_hash(watched)
    main, argv = build(tmp_path, str(out))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and all(w in err for w in words), err
    assert tree_hash(watched) == before            # nothing written, nothing lost
    if state == "absent":
        assert not out.exists()


def test_an_address_where_no_cluster_is_fails_within_seconds(tmp_path):
    out = filled_out(tmp_path)
    before = tree_hash(out)
    sweep = sweep_file(tmp_path, "more", TINY_SIM, dp=[0.05, 0.5, 1.0])   # trials left to run
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "raysweep.grid", "--sweep", sweep, "--out",
                          str(out), "--address", "127.0.0.1:1"], check=False, capture_output=True,
                         text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    took = time.monotonic() - start
    assert run.returncode == 2, run.stderr[-3000:]
    assert "error: --address / RAY_ADDRESS 127.0.0.1:1: no Ray cluster answers" in run.stderr
    assert "expected the head node's address" in run.stderr
    assert took < 60                                # imports included, on a busy 2-core VM
    assert tree_hash(out) == before


@pytest.mark.parametrize("name, payload, warning", [
    ("corrupt", b"PAR1 torn upload", "skipping unreadable result file"),
    ("foreign", None, "of another schema: it lacks the columns trial_id"),
])
def test_a_damaged_result_file_is_skipped_with_a_warning_and_the_run_goes_on(
        name, payload, warning, tmp_path, capsys):
    out = filled_out(tmp_path)
    stray = out / "results" / f"{name}.parquet"
    if payload is None:
        pq.write_table(pa.table({"a": [1], "status": ["ok"]}), stray)
    else:
        stray.write_bytes(payload)
    records = {p.name: p.read_bytes() for p in (out / "results").iterdir()}
    sweep = sweep_file(tmp_path, "tiny-sim", TINY_SIM)
    with pytest.warns(UserWarning, match=warning):
        code = grid.main(["--sweep", sweep, "--out", str(out), "--bootstrap", "0"])
    assert code == 0, capsys.readouterr().err
    assert "10 trials, 0 run now, 10 already done" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (out / "results").iterdir()} == records
    assert (out / "report" / "report.html").is_file()     # fitted and reported regardless
