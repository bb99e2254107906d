"""The figures module's parts on their own: figure kinds and their pixel sizes, the names it
knows, a law's prediction, the seed-paired differences of the distillation figures, the fixed
colours per model size. The report that puts them together is tests/test_report.py."""

from __future__ import annotations

import pytest
from test_report import LAWS_KNOWN, png_size

from raysweep.laws.entries import entry
from raysweep.report.figures import (
    DPI,
    FIG_SIZES_IN,
    HEAD_COLOURS,
    LAWS,
    fig_px,
    head_colour,
    law_info,
    new_figure,
    predict,
)
from raysweep.report.figures_boundary import paired_differences


@pytest.mark.parametrize("kind", sorted(FIG_SIZES_IN))
def test_every_figure_kind_saves_at_its_pixel_size(kind, tmp_path):
    fig, _ = new_figure(kind)
    fig.savefig(tmp_path / "f.png", dpi=DPI)
    assert png_size(tmp_path / "f.png") == fig_px(kind)


def test_unknown_names_fail_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown figure kind 'pie'.*'boundary'"):
        new_figure("pie")
    with pytest.raises(ValueError, match="unknown law 'perplexity'.*'distilled_error'"):
        law_info("perplexity")


@pytest.mark.parametrize("name", sorted(LAWS))
def test_predict_each_law_at_a_known_point(name):
    law = LAWS_KNOWN[name]
    x = {"dp": 10_000, "params": 1e7, "df": 1_000, "teacher_params": 5e6}
    by_hand = law["E"] + sum(t["coef"] * x[k] ** -t["exponent"] for k, t in law["terms"].items())
    assert float(predict(entry(law), x)) == pytest.approx(by_hand, rel=1e-12)
    with pytest.raises(ValueError, match="law needs inputs"):
        predict(entry(law), {"dp": 1.0})


def test_paired_differences_pair_by_seed_and_skip_unpaired_dp():
    plain = [{"dp": 1000, "seed": s, "error": 0.5 + 0.01 * s} for s in (0, 1)]
    plain.append({"dp": 4000, "seed": 0, "error": 0.4})
    distilled = [{"dp": 1000, "seed": s, "error": 0.45} for s in (0, 1, 2)]  # seed 2: no plain
    distilled.append({"dp": 16000, "seed": 0, "error": 0.3})  # Dp run only one way
    diffs = paired_differences(plain, distilled)
    assert set(diffs) == {1000}
    mean, sd, n = diffs[1000]
    assert (mean, n) == (pytest.approx(0.055), 2) and sd == pytest.approx(0.01 / 2 ** 0.5)


def test_model_sizes_keep_distinct_fixed_colours():
    paper_sizes = [head_colour(h) for h in (2, 4, 6, 8)]
    assert len(set(paper_sizes)) == 4
    assert head_colour(4) == HEAD_COLOURS[4] and head_colour(20) == head_colour(20)
