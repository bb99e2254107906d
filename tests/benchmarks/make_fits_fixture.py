"""Writes the fits.json fixture of tests/test_entries.py: a study's files and what the report says
of them, with whatever raysweep is first on the path.

Run: git archive 1f38f6c | tar -x -C OLD_TREE     (the last commit that built fits.json from dicts)
     PYTHONPATH=OLD_TREE .venv/bin/python tests/benchmarks/make_fits_fixture.py \
         tests/data/fits_1f38f6c                  (~1 min on 2 cores)

Fits a simulated study (a truth with a Dp x Df interaction, 2 seeds, 20 bootstrap resamples) with
three candidate forms beside the paper's -- one the comparison selects, one that cannot be
evaluated at the data -- and writes DIR/fits.json and DIR/boundary.json as laws/study.py's
write_fits writes them, and DIR/report.txt: the report's tables as the terminal prints them with
--verbose, then the findings' sentences and slice lines.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

from raysweep.laws import study
from raysweep.report import findings, summary
from raysweep.sweep import simulate

PARAMS = {2: 1.3e6, 4: 4.6e6, 8: 17.6e6}   # heads -> parameters
PLAIN = "0.10 + 3.0 * df**-0.15 / dp**0.3 + 6.0 / params**0.3 + 0.5 / df**0.3"
DISTILLED = "0.12 + 20.0 * df**-0.15 / dp**0.6 + 6.0 / params**0.3 + 0.5 / df**0.3"
OFFERED = {
    "error": {"dp_x_df": "E + A * df**-kappa / dp**alpha + B / params**beta + C / df**gamma",
              "bad_log": "E + A / dp**alpha + log(params - 1e12)"},
    "distilled_error": {"dp_x_df": "E + A * df**-kappa / dp**alpha + B / params**beta"
                                   " + C / df**gamma"},
}


def rows(seeds=(0, 1), noise=0.01) -> list[dict]:
    rng, out = np.random.default_rng(0), []
    for heads, dp, df, seed in itertools.product((4, 8), np.geomspace(1e3, 1e6, 5),
                                                 (100, 1000, 10000), seeds):
        x = {"dp": dp, "params": PARAMS[heads], "df": df, "teacher_params": PARAMS[2]}
        base = {"downstream": "digits", "heads": heads, "params": int(PARAMS[heads]),
                "dp": int(dp), "df": int(df), "seed": seed, "status": "ok"}
        for stage, truth, teachers in (("finetune", PLAIN, []), ("distill", DISTILLED, [2])):
            y = simulate.law_value(truth, x) * math.exp(noise * rng.standard_normal())
            out.append(base | {"stage": stage, "teacher_heads": teachers, "error": y,
                               "loss": 2 * y,
                               "teacher_params": x["teacher_params"] if teachers else None})
    return out


def report_text(fits: dict, slices: list) -> str:
    said = [summary.tables_text(fits, slices)]
    for f in findings.findings(fits, slices, None, {}):
        said += [f.downstream, *(f"  {s}" for s in f.sentences),
                 *(f"  {label} | {text}" for label, text in f.slices)]
    return "\n".join(said) + "\n"


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    doc, slices = study.fit_results(rows(), bootstrap=20, offered=OFFERED)
    # as write_fits writes them (its JSON form of the laws, where it has one)
    as_json = getattr(study, "json_doc", lambda d: d)(doc)
    (out / "fits.json").write_text(json.dumps(study.finite(as_json), indent=1))
    (out / "boundary.json").write_text(json.dumps(study.finite([s.to_json() for s in slices]),
                                                  indent=1))
    (out / "report.txt").write_text(report_text(doc, slices))


if __name__ == "__main__":
    main()
