"""The commands' exit codes: 0 all planned trials ok, 1 some failed or diverged (and where their
messages are), 2 bad input (tests/test_bad_input.py), 130 on Ctrl-C with the line that resumes;
documented in every --help. Ctrl-C is sent to a real `python -m raysweep.grid` on its own local
Ray, mid-grid, and the same command run again resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from raysweep import cli, grid
from raysweep.adaptive import __main__ as adaptive_cli
from raysweep.run import trial as trial_mod
from raysweep.store import results
from raysweep.sweep import plan, spec

ROOT = Path(__file__).parent.parent
SIM = yaml.safe_load((ROOT / "sweeps" / "simulate.yaml").read_text())


def sim_file(tmp: Path, **changes) -> Path:
    raw = {**SIM, "name": "codes", "model": {**SIM["model"], "heads": [2, 4]}, "df": [1.0],
           "teachers": {4: [[2]]}, **changes}
    path = tmp / "codes.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("help_of", [lambda: cli.parser("x", "doc"), adaptive_cli.parser])
def test_every_command_documents_its_exit_codes(help_of):
    text = help_of().format_help()
    for code, words in ((0, "every planned trial finished ok"), (1, "failed or diverged"),
                        (2, "bad input"), (130, "re-running the same command resumes")):
        assert f"  {code} " in text and words in text.replace("\n       ", " "), text


def test_diverged_trials_exit_1_and_say_how_many_and_where(tmp_path, capsys):
    # depth 1: the smallest models' simulated error exceeds 1 at the small Dp (1.054, 1.080), so
    # two trials are `diverged`; no noise, so no count rests on the draws that the ids seed
    sweep = sim_file(tmp_path, model={**SIM["model"], "heads": [2, 4], "depth": 1},
                     dp=[0.05, 1.0], simulate={**SIM["simulate"], "noise": 0.0})
    out = tmp_path / "out"
    trials = plan.plan(spec.load(sweep))
    for t in trials:   # answered in-process: the command finds every trial done (no Ray)
        trial_mod.run(t, trial_mod.Context(str(out)))
    statuses = [r["status"] for r in results.read(str(out)).to_pylist()]
    assert statuses.count("diverged") == 2 and len(statuses) == len(trials) == 10
    assert grid.main(["--sweep", str(sweep), "--out", str(out), "--bootstrap", "0"]) == 1
    err = capsys.readouterr().err
    assert f"2 of 10 trials did not finish ok (2 diverged); their messages are in {out}/results"\
        in err


def test_outcome_counts_failed_and_missing_trials_and_is_0_only_when_all_are_ok(tmp_path,
                                                                               capsys):
    out = str(tmp_path)
    trials = plan.plan(spec.load(sim_file(tmp_path, dp=[1.0])))[:3]
    for t, status in zip(trials, ["ok", "failed"]):
        results.write(out, results.record(t, status=status, error=0.1, message="boom"))
    assert cli.outcome({t.trial_id for t in trials}, out, results.read(out)) == cli.TRIALS_FAILED
    assert "2 of 3 trials did not finish ok (1 failed, 1 without a record)" in \
        capsys.readouterr().err
    assert cli.outcome({trials[0].trial_id}, out, results.read(out)) == cli.OK
    results.write(out, results.record(trials[1], status="ok", error=0.1))   # a re-run: ok wins
    assert cli.outcome({t.trial_id for t in trials[:2]}, out, results.read(out)) == cli.OK


def result_files(out: Path) -> dict[str, tuple[bytes, int]]:
    folder = out / "results"
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in (folder.glob("*.parquet") if folder.is_dir() else [])}


def test_ctrl_c_exits_130_keeps_finished_trials_and_the_same_command_resumes(tmp_path):
    # 10 simulated trials holding 1.5 s each, two at a time on the command's own local Ray
    sweep = sim_file(tmp_path, dp=[0.05, 1.0], simulate={**SIM["simulate"], "hold_s": 1.5})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "raysweep.grid", "--sweep", str(sweep), "--out", str(out),
               "--bootstrap", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while len(result_files(out)) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last == "to resume, re-run the same command: " + " ".join(
        ["python", "-m", "raysweep.grid", *command[3:]]), stderr[-3000:]
    assert f"finished trials are kept in {out}/results" in stderr
    kept = result_files(out)
    assert 2 <= len(kept) < 10                      # stopped mid-grid: no trial ran to the end
    time.sleep(3)                                   # longer than a trial holds: none was left
    assert result_files(out) == kept                # running after the command ended
    assert {r["status"] for r in results.read(str(out)).to_pylist()} == {"ok"}   # none `failed`

    second = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"10 trials, {10 - len(kept)} run now, {len(kept)} already done" in second.stdout
    after = result_files(out)
    assert len(after) == 10 and {k: after[k] for k in kept} == kept   # finished: not re-run
