"""The report from a simulated grid whose laws are known, and from thin data.

The grid below looks like a real run: 4 model sizes x 4 Dp x 2 Df x 2 seeds of plain transfer,
the paper's three small-to-large teacher sets, pretraining rows, a few diverged trials, with
fits.json / boundary.json written from the same known laws (so the tables must show exactly those
numbers) and an adaptive.json / hparams.yaml. Thin data: an empty results directory, and one Dp
value with a failed law, a failed boundary slice and no distillation.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest
import yaml

from raysweep.laws.catalogue import SYMBOLS
from raysweep.laws.entries import entry
from raysweep.laws.law import additive
from raysweep.report import __main__ as report_cli
from raysweep.report import build as report
from raysweep.report.figures import (
    DPI,
    fig_px,
    predict,
    short,
)
from raysweep.report.figures_map import SIZE_IN as MAP_SIZE_IN
from raysweep.report.tables import fmt
from raysweep.store import results, storage

pytest_plugins = ["s3_server"]  # fixture s3_out: a prefix on a local S3 server (moto)

PARAMS = {2: 2_400_000, 4: 9_500_000, 6: 21_300_000, 8: 37_800_000}  # ~12 layers x 12 d^2
TEACHERS = {4: (2,), 6: (2, 4), 8: (2, 4, 6)}  # the paper's small-to-large sets
DP, DF, SEEDS = (1_000, 4_000, 16_000, 64_000), (300, 1_500), (0, 1)
DS = "digits"


def term(coef, exponent):
    return {"coef": coef, "exponent": exponent, "lambda": 1.0 / coef}


def law(target, E, terms, n):
    """A fits.json entry of the paper's form with these values (laws.law.additive names the
    parameters: E, A / alpha for dp, ...)."""
    ci = {"E": [E * 0.8, E * 1.2]}
    for k, t in terms.items():
        ci[SYMBOLS[k].coef] = [t["coef"] * 0.9, t["coef"] * 1.1]
        ci[SYMBOLS[k].exponent] = [t["exponent"] - 0.03, t["exponent"] + 0.04]
    fitted = additive(E, {k: (t["coef"], t["exponent"]) for k, t in terms.items()}).to_dict()
    return {"target": target, "inputs": list(terms), "n": n, **fitted,
            "objective": 0.0012, "ci": ci, "status": "ok",
            "extrapolation": {"dp": {"held_out": 16, "mape": 0.0412},
                              "df": {"skipped": "only two Df values"}}}


LAWS_KNOWN = {
    "error": law("error", 0.05, {"dp": term(8.0, 0.5), "params": term(15.0, 0.3),
                                 "df": term(1.0, 0.3)}, 64),
    "loss": law("loss", 0.3, {"dp": term(10.0, 0.3), "params": term(40.0, 0.3),
                              "df": term(4.0, 0.3)}, 64),
    "distilled_error": law("distilled_error", 0.06, {  # F(Dp) peaks near 3k, crosses near 30k
        "dp": term(219.0, 1.0), "params": term(15.0, 0.3), "df": term(1.0, 0.3),
        "teacher_params": term(0.66, 0.2)}, 48),
    "distilled_loss": law("distilled_loss", 0.4, {
        "dp": term(6.0, 0.3), "params": term(40.0, 0.3), "df": term(4.0, 0.3),
        "teacher_params": term(5.0, 0.2)}, 48),
}


def row(stage, heads, dp, seed, df=None, teachers=(), error=None, loss=None, status="ok"):
    tp = float(np.mean([PARAMS[t] for t in teachers])) if teachers else None
    key = f"{stage}-{heads}-{dp}-{df}-{'.'.join(map(str, teachers))}-{seed}"
    return {"trial_id": key, "stage": stage, "upstream": "fractal",
            "downstream": None if stage == "pretrain" else DS, "heads": heads,
            "params": PARAMS[heads], "dp": dp, "df": df, "teacher_heads": list(teachers),
            "teacher_params": tp, "seed": seed, "error": error, "loss": loss,
            "status": status, "wall_s": 1.0, "config": "{}"}


def measured(stage, heads, dp, df, teachers, rng):
    """(error, loss) from the known laws plus seed noise (sd 0.004 error, 0.02 nats)."""
    names = ("error", "loss") if stage == "finetune" else ("distilled_error", "distilled_loss")
    x = {"dp": dp, "params": PARAMS[heads], "df": df,
         "teacher_params": np.mean([PARAMS[t] for t in teachers]) if teachers else 1.0}
    return (float(predict(entry(LAWS_KNOWN[names[0]]), x)) + rng.normal(0, 0.004),
            float(predict(entry(LAWS_KNOWN[names[1]]), x)) + rng.normal(0, 0.02))


def grid_rows(dps=DP, dfs=DF, distill=True, seeds=SEEDS):
    rng = np.random.default_rng(0)
    rows = [row("pretrain", h, dp, s) for h in PARAMS for dp in dps for s in seeds]
    for h, dp, df, s in ((h, dp, df, s) for h in PARAMS for dp in dps for df in dfs
                         for s in seeds):
        rows.append(row("finetune", h, dp, s, df, (), *measured("finetune", h, dp, df, (), rng)))
        if distill and h in TEACHERS:
            e, lo = measured("distill", h, dp, df, TEACHERS[h], rng)
            rows.append(row("distill", h, dp, s, df, TEACHERS[h], e, lo))
    rows.append(row("finetune", 8, dps[-1], 7, dfs[0], status="diverged"))
    if distill:
        rows.append(row("distill", 8, dps[0], 7, dfs[0], TEACHERS[8], status="failed"))
    return rows


def write_results(out, rows):
    for r in rows:  # one file per trial record, as the executor writes them
        results.write(str(out), r)


def boundary_slice(heads, df):
    """D*p (peak of F) and D**p (root of F) of the known laws, found on a fine log grid."""
    dp = np.geomspace(1e2, 1e7, 4001)
    x = {"dp": dp, "params": PARAMS[heads], "df": df,
         "teacher_params": np.mean([PARAMS[t] for t in TEACHERS[heads]])}
    f = (predict(entry(LAWS_KNOWN["error"]), x)
         - predict(entry(LAWS_KNOWN["distilled_error"]), x))
    cross = np.nonzero(np.diff(np.sign(f)) < 0)[0]
    d_star = float(dp[np.argmax(f)])
    d_cross = float(dp[cross[0]]) if len(cross) else None
    return {"downstream": DS, "student_heads": heads, "teacher_heads": list(TEACHERS[heads]),
            "df": df, "d_star": d_star, "d_star_ci": [d_star * 0.7, d_star * 1.5],
            "d_cross": d_cross, "d_cross_ci": [d_cross * 0.8, d_cross * 1.3] if d_cross else None,
            "model_free_cross": d_cross * 1.1 if d_cross else None,
            "model_free_cross_ci": [d_cross * 0.9, d_cross * 1.2] if d_cross else None,
            "status": "ok" if d_cross else "no crossing in measured range",
            "in_range": bool(d_cross and DP[0] <= d_cross <= DP[-1])}


ADAPTIVE = {"rounds": [
    {"round": 1, "proposals": [{"downstream": DS, "student_heads": h, "teacher_heads": [2],
                                "df": 1500, "dp": dp, "reason": "D**p interval widest"}
                               for h in (4, 6) for dp in (8_000, 24_000)], "boundary": []},
    {"round": 2, "proposals": [{"downstream": DS, "student_heads": 8, "teacher_heads": [2, 4, 6],
                                "df": 1500, "dp": 12_000, "reason": "D*p interval widest"}],
     "boundary": []}], "boundary": [], "trials_run": 5, "trials_total": 121}
HPARAMS = {"heads": {2: {"lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 5},
                     4: {"lr": 7e-4, "weight_decay": 0.05, "warmup_epochs": 5},
                     6: {"lr": 5e-4, "weight_decay": 0.1, "warmup_epochs": 10},
                     8: {"lr": 3e-4, "weight_decay": 0.1, "warmup_epochs": 10}}}


def write_grid(out):
    write_results(out, grid_rows())
    fits = {"downstream": {DS: LAWS_KNOWN}, "bootstrap": 200, "created": "2025-01-01T00:00Z"}
    (out / "fits.json").write_text(json.dumps(fits))
    slices = [boundary_slice(h, df) for h in TEACHERS for df in DF]
    (out / "boundary.json").write_text(json.dumps(slices))
    (out / "adaptive.json").write_text(json.dumps(ADAPTIVE))
    (out / "hparams.yaml").write_text(yaml.safe_dump(HPARAMS))
    return slices


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk: 8-byte signature, length, b'IHDR', then two >I."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    slices = write_grid(out)
    return out, report.write_report(str(out)), slices


FIGURE_KINDS = {  # file-name ending -> figure kind (FIG_SIZES_IN), so each PNG's size can be checked
    "-vs-dp": "scaling", "-vs-df": "scaling", "-vs-params": "scaling", "-parity": "parity",
    "-distill": "distill", "-boundary": "boundary", "-adaptive": "adaptive", "hparams": "hparams",
}


def kind_of(stem: str) -> str:
    return next(kind for end, kind in FIGURE_KINDS.items() if stem.endswith(end))


def px_of(stem: str) -> tuple[int, int]:
    """The findings map is one figure across the page (figures_map.SIZE_IN); the rest by kind."""
    if stem.endswith("-findings-map"):
        return round(MAP_SIZE_IN[0] * DPI), round(MAP_SIZE_IN[1] * DPI)
    return fig_px(kind_of(stem))


def expected_figures() -> set[str]:
    names = {f"{DS}-{t}-vs-{x}" for t in ("error", "loss") for x in ("dp", "df", "params")}
    for h, teachers in TEACHERS.items():
        for df in DF:
            stem = f"{DS}-s{h}-t{'-'.join(map(str, teachers))}-df{df}"
            names |= {f"{stem}-distill", f"{stem}-boundary"}
    return names | {f"{DS}-parity", f"{DS}-adaptive", "hparams", f"{DS}-findings-map"}


def test_every_expected_figure_is_a_drawn_png_of_its_kinds_size(grid_report):
    out, _, _ = grid_report
    pngs = {p.stem: p for p in (out / "report" / "figures").glob("*.png")}
    assert set(pngs) == expected_figures()
    for stem, path in pngs.items():
        assert png_size(path) == px_of(stem), stem
        pixels = mpimg.imread(path)
        assert pixels.std() > 0.05, f"{stem} is (nearly) blank"  # white page: std 0


def test_report_files_exist_and_the_path_is_returned(grid_report):
    out, html_path, _ = grid_report
    assert html_path == str(out / "report" / "report.html")
    for name in ("report.md", "report.html"):
        assert (out / "report" / name).stat().st_size > 1000


def test_tables_hold_the_fitted_values_of_fits_json(grid_report):
    out, _, _ = grid_report
    md = (out / "report" / "report.md").read_text()
    # hand-formatted: eq. 1's Dp exponent 0.5 with interval [0.47, 0.54]; coef 8 -> lambda 0.125
    assert "| digits | error (eq. 1) | paper | 64 | 0.5 [0.47, 0.54] |" in md
    assert "8 [7.2, 8.8]; lambda 0.125 [0.114, 0.139]" in md
    assert "| digits | error | dp | 16 | 4.12 % |" in md
    assert "skipped: only two Df values" in md
    for name, law in LAWS_KNOWN.items():
        assert fmt(law["E"]) in md
        for k, t in law["terms"].items():
            ci = law["ci"][SYMBOLS[k].exponent]
            assert f"{fmt(t['exponent'])} [{fmt(ci[0])}, {fmt(ci[1])}]" in md, (name, k)
            assert f"lambda {fmt(t['lambda'])}" in md, (name, k)


def test_boundary_table_has_a_row_per_slice_with_its_values(grid_report):
    out, _, slices = grid_report
    md = (out / "report" / "report.md").read_text()
    for s in slices:
        for value, ci in ((s["d_cross"], s["d_cross_ci"]),
                          (s["model_free_cross"], s["model_free_cross_ci"])):
            assert f"{short(value)} [{short(ci[0])}, {short(ci[1])}]" in md
    boundary_part, theorem1_part = md.split("Theorem 1, measured")
    assert boundary_part.count("| digits | 8 heads | 2+4+6 heads |") == len(DF)
    assert theorem1_part.count("| digits | 8 heads | 2+4+6 heads |") == len(DF)


def test_html_is_self_contained_with_every_figure_embedded(grid_report):
    out, html_path, _ = grid_report
    with open(html_path, encoding="utf-8") as f:
        page = f.read()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(expected_figures())
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for banned in ("http://", "https://", "<link", "<script", "url("):
        assert banned not in page
    figure = out / "report" / "figures" / f"{DS}-parity.png"
    embedded = re.search(rf'id="{DS}-parity"><img alt="[^"]*" '
                         r'src="data:image/png;base64,([^"]+)"', page)
    assert base64.b64decode(embedded[1]) == figure.read_bytes()


def test_markdown_links_every_figure_file(grid_report):
    out, _, _ = grid_report
    md = (out / "report" / "report.md").read_text()
    linked = set(re.findall(r"\]\(figures/([^)]+)\.png\)", md))
    assert linked == expected_figures()


def test_diverged_and_failed_trials_are_counted_and_left_out(grid_report):
    out, _, _ = grid_report
    md = (out / "report" / "report.md").read_text()
    assert "| digits | finetune | 64 | 1 | 0 |" in md
    assert "| digits | distill | 48 | 0 | 1 |" in md
    assert "Left out of the figures on digits: 1 diverged and 1 failed trials" in md


def test_empty_results_directory_gets_a_report_that_says_why(tmp_path):
    (tmp_path / "results").mkdir()
    report.write_report(str(tmp_path))
    md = (tmp_path / "report" / "report.md").read_text()
    for why in ("No results yet", "No fits.json yet", "No boundary.json yet",
                "No adaptive rounds", "No hparams.yaml"):
        assert why in md
    assert not list((tmp_path / "report").rglob("*.png"))
    assert "<img" not in (tmp_path / "report" / "report.html").read_text()


def test_thin_data_one_dp_a_failed_law_and_no_distillation(tmp_path):
    write_results(tmp_path, grid_rows(dps=(4_000,), distill=False))
    laws = {**LAWS_KNOWN, "error": {"target": "error", "inputs": ["dp", "params", "df"],
                                    "status": "too few distinct Dp values (1)"}}
    (tmp_path / "fits.json").write_text(json.dumps({"downstream": {DS: laws}}))
    (tmp_path / "report" / "figures").mkdir(parents=True)
    (tmp_path / "report" / "figures" / "stale.png").write_bytes(b"old")
    report.write_report(str(tmp_path))
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Only one Dp value measured on digits (4k images)" in md
    assert "The error law (eq. 1) on digits is not fitted: too few distinct Dp values (1)" in md
    assert "not fitted: too few distinct Dp values (1)" in md  # in the law tables too
    assert "No distilled trials on digits yet" in md
    assert "Left out of the figures on digits: 1 diverged and 0 failed trials" in md
    stems = {p.stem for p in (tmp_path / "report" / "figures").glob("*.png")}
    assert stems == {f"{DS}-{t}-vs-{x}" for t in ("error", "loss") for x in ("df", "params")} \
        | {f"{DS}-parity"}  # the earlier run's stale.png is gone, and no Dp figure was drawn


def test_a_failed_boundary_slice_is_drawn_and_tabled_with_its_reason(tmp_path):
    write_results(tmp_path, [r for r in grid_rows() if r["heads"] in (2, 4)])
    laws = {**LAWS_KNOWN, "distilled_error": {"status": "bootstrap did not converge"}}
    (tmp_path / "fits.json").write_text(json.dumps({"downstream": {DS: laws}}))
    failed = {"downstream": DS, "student_heads": 4, "teacher_heads": [2], "df": 300,
              "d_star": None, "d_star_ci": None, "d_cross": None, "d_cross_ci": None,
              "model_free_cross": None, "status": "no crossing in measured range",
              "in_range": False}
    (tmp_path / "boundary.json").write_text(json.dumps([failed]))
    report.write_report(str(tmp_path))
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| digits | 4 heads | 2 heads | 300 | — | — | — | no | no crossing in measured range |" \
        in md
    assert "Boundary status: no crossing in measured range." in md
    assert "Boundary status: not in boundary.json." in md  # the Df = 1500 slice has no entry
    path = tmp_path / "report" / "figures" / f"{DS}-s4-t2-df300-boundary.png"
    assert png_size(path) == fig_px("boundary")


def test_malformed_inputs_become_notes_not_exceptions(tmp_path):
    write_results(tmp_path, grid_rows(dps=(1_000, 4_000), distill=False)[:12])
    (tmp_path / "fits.json").write_text("{not json")
    (tmp_path / "boundary.json").write_text(json.dumps({"slices": []}))
    (tmp_path / "hparams.yaml").write_text("heads: [2, 4]\n")
    report.write_report(str(tmp_path))
    md = (tmp_path / "report" / "report.md").read_text()
    assert "fits.json could not be read" in md
    assert "boundary.json is not a list of slices" in md
    assert "hparams.yaml is not a mapping with a 'heads' mapping" in md


def test_cli_prints_the_report_path(tmp_path):
    (tmp_path / "results").mkdir()
    run = subprocess.run([sys.executable, "-m", "raysweep.report", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "report" / "report.html")


def test_cli_missing_out_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    with pytest.raises(SystemExit) as exit_:
        report_cli.main([str(missing)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "Traceback" not in err


def test_report_on_object_storage(s3_out):
    for r in grid_rows(dps=(1_000, 4_000), dfs=(300,), distill=False):
        results.write(s3_out, r)
    fits = {"downstream": {DS: LAWS_KNOWN}}
    storage.write_bytes(s3_out, "fits.json", json.dumps(fits).encode())
    uri = report.write_report(s3_out)
    assert uri == f"{s3_out}/report/report.html"
    page = storage.read_bytes(s3_out, "report/report.html").decode()
    assert page.count("data:image/png;base64,") == len(
        storage.list_files(s3_out, "report/figures", ".png")) > 0


def test_a_law_with_an_unknown_input_becomes_a_note_per_figure(tmp_path):
    write_results(tmp_path, grid_rows(dfs=(300,), distill=False))
    renamed = {**LAWS_KNOWN["error"], "expression": "E + A / dp**alpha + B / M**beta",
               "params": {"E": 0.05, "A": 8.0, "alpha": 0.5, "B": 15.0, "beta": 0.3}}
    fits = {"downstream": {DS: {**LAWS_KNOWN, "error": renamed}}}
    (tmp_path / "fits.json").write_text(json.dumps(fits))
    report.write_report(str(tmp_path))
    md = (tmp_path / "report" / "report.md").read_text()
    assert ("Figure digits-error-vs-dp could not be drawn (ValueError: law needs inputs ['M']"
            in md)
    assert (tmp_path / "report" / "figures" / f"{DS}-loss-vs-dp.png").exists()
