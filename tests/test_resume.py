"""What a command does with an OUT written by other raysweep code (raysweep.run.resume): records
of the earlier id scheme stop it until --old-ids says adopt or ignore, then never again; results
of other code are named in one line and re-run only when asked (--other-code rerun); a newer
raysweep's stop it until the user chooses. Nothing is deleted or overwritten unasked."""

import json
from pathlib import Path

import legacy_ids
import pytest
import yaml

from raysweep import fit, grid
from raysweep.errors import InputError
from raysweep.report import build as report
from raysweep.run import resume
from raysweep.run import trial as trial_mod
from raysweep.store import layout, provenance, results, storage
from raysweep.sweep import identity, plan, spec

ROOT = Path(__file__).parent.parent
SIM = yaml.safe_load((ROOT / "sweeps" / "simulate.yaml").read_text())


def sim_file(tmp: Path) -> Path:
    raw = {**SIM, "name": "resume", "model": {**SIM["model"], "heads": [2, 4]},
           "dp": [0.25, 1.0], "df": [1.0], "teachers": {4: [[2]]}}
    path = tmp / "resume.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def command(sweep: Path, out: Path, *flags: str) -> int:
    return grid.main(["--sweep", str(sweep), "--out", str(out), "--bootstrap", "0", *flags])


def test_scheme_1_records_stop_the_command_until_old_ids_adopts_them(tmp_path, capsys):
    path, out = sim_file(tmp_path), tmp_path / "out"
    sweep = spec.load(path)
    trials = plan.plan(sweep)
    old = legacy_ids.write_legacy_records(str(out), sweep)
    pretrain = next(t for t in trials if t.stage == "pretrain")
    storage.write_bytes(str(out), layout.checkpoint(old[pretrain.trial_id]), b"weights")
    before = files(out)
    assert command(path, out) == 2
    err = capsys.readouterr().err
    assert f"holds {len(trials)} results whose trial ids were made by an earlier id scheme" in err
    assert "--old-ids adopt" in err and "--old-ids ignore" in err
    assert files(out) == before                      # nothing written, nothing removed
    # adopt: every trial is found done, so nothing runs (no Ray is started)
    assert command(path, out, "--old-ids", "adopt") == 0
    said = capsys.readouterr().out
    assert f"{len(trials)} adopted now under their new ids" in said
    assert f"{len(trials)} trials, 0 run now, {len(trials)} already done" in said
    assert f"{len(trials)} results in OUT were made by other code" in said
    assert "by raysweep 0.1.0, source (not hashed)" in said
    after = files(out)
    assert {k: after[k] for k in before} == before   # the old files stay as they were
    table = results.read(str(out)).to_pylist()
    assert {r["trial_id"] for r in table} == {t.trial_id for t in trials}
    assert all(r["id_scheme"] == identity.SCHEME and
               f"adopted from trial {old[r['trial_id']]} of id scheme 1" in r["message"]
               for r in table)
    assert after[layout.checkpoint(pretrain.trial_id)] == b"weights"
    assert results.read_all(str(out)).num_rows == 2 * len(trials)
    assert json.loads(after[layout.ID_SCHEMES])["old_ids"] == "adopt"
    assert command(path, out) == 0                   # the choice is kept: no flag needed now
    assert files(out).keys() == after.keys()


def test_ignore_keeps_scheme_1_records_unused_and_leaves_every_trial_to_run(tmp_path):
    sweep, out = spec.load(sim_file(tmp_path)), tmp_path / "out"
    legacy_ids.write_legacy_records(str(out), sweep)
    before = files(out)
    said = []
    found = resume.check(str(out), {t.trial_id for t in plan.plan(sweep)}, "ignore",
                         echo=said.append)
    assert found.done == set() and found.table.num_rows == 0
    assert said == [(f"10 records of id scheme 1 in {out}/results stay there unused (--old-ids "
                    f"ignore): their trials run under new ids")]
    assert {k: v for k, v in files(out).items() if k != layout.ID_SCHEMES} == before


def finished_grid(tmp_path: Path) -> tuple[str, list[plan.Trial]]:
    """An OUT holding every trial's record, answered in this process."""
    out = str(tmp_path / "out")
    trials = plan.plan(spec.load(sim_file(tmp_path)))
    for t in trials:
        trial_mod.run(t, trial_mod.Context(out))
    return out, trials


def rewrite_code(out: str, trial: plan.Trial, **code) -> None:
    (row,) = [r for r in results.read(out).to_pylist() if r["trial_id"] == trial.trial_id]
    results.write(out, {**row, **code})


def test_results_of_other_code_are_named_in_one_line_and_rerun_only_when_asked(tmp_path):
    out, trials = finished_grid(tmp_path)
    planned = {t.trial_id for t in trials}
    for t in trials[:3]:
        rewrite_code(out, t, code_source="0" * 16, code_commit="abc" * 10)
    said = []
    found = resume.check(out, planned, echo=said.append)
    assert found.rerun == set() and found.done == planned
    here = provenance.current().label()
    assert said == [(f"3 results in OUT were made by other code than this ({here}): 3 by raysweep "
                    f"0.1.0, source 00000000, commit abcabcabca; they are used as they are; "
                    f"--other-code rerun runs them again")]
    found = resume.check(out, planned, other_code="rerun", echo=said.append)
    assert found.rerun == {t.trial_id for t in trials[:3]} and found.done == planned - found.rerun
    assert said[-1].endswith("3 of them run again (--other-code rerun)")
    page = Path(report.write_report(out)).with_name("report.md").read_text()
    assert f"Rows made by: {here} ({len(trials) - 3}); raysweep 0.1.0, source 00000000, " \
           f"commit abcabcabca (3)." in page


def test_results_of_a_newer_raysweep_stop_the_command_until_the_user_chooses(tmp_path, capsys):
    out, trials = finished_grid(tmp_path)
    rewrite_code(out, trials[0], code_version="99.1.0")
    with pytest.raises(InputError, match=r"1 results in OUT were made by a newer raysweep "
                                         r"\(99.1.0\) than this one"):
        resume.check(out, {t.trial_id for t in trials})
    before = files(Path(out))
    assert command(sim_file(tmp_path), Path(out)) == 2
    assert "--other-code keep" in capsys.readouterr().err and files(Path(out)) == before
    assert command(sim_file(tmp_path), Path(out), "--other-code", "keep") == 0
    assert "1 results in OUT were made by other code" in capsys.readouterr().out


def test_a_command_with_nothing_to_run_reads_the_results_once(tmp_path, capsys, monkeypatch):
    """The plan's what-is-done, the status line, the fits, the report and the exit code share one
    read of the results (on object storage every read is a round trip per file); a command that
    runs trials reads them once more, after its trials."""
    path, out = sim_file(tmp_path), tmp_path / "out"
    legacy_ids.write_legacy_records(str(out), spec.load(path))
    assert command(path, out, "--old-ids", "adopt") == 0   # every trial done: no Ray needed
    real, reads = results.read, []
    monkeypatch.setattr(results, "read", lambda *a, **k: reads.append(a) or real(*a, **k))
    assert command(path, out) == 0
    assert len(reads) == 1
    assert "report:" in capsys.readouterr().out            # the fits and report did run
    reads.clear()
    assert fit.main([str(out), "--bootstrap", "0"]) == 0   # a refit reads them once too
    assert len(reads) == 1 and "wrote " in capsys.readouterr().out
