"""raysweep.laws.checks: the pure-error F test by hand, its verdict on rows from a law the fitted
form can and cannot draw, its refusals, the MAPE that seed noise alone costs, and how fits.json
and the tables carry them.
Its size and power over many draws are measured in tests/benchmarks/bench_lack_of_fit.py."""

import dataclasses

import numpy as np
import pytest
from scipy import stats

from raysweep.laws import study
from raysweep.laws.checks import extrapolation_check, lack_of_fit, noise_floor, seed_sd
from raysweep.laws.fitting import fit_law
from raysweep.laws.law import additive, additive_form
from raysweep.report import tables
from raysweep.report.render import to_text

LAW = additive(0.0, {"dp": (2.0, 0.5)})


def test_the_statistic_is_the_pure_error_f_test_by_hand():
    # 3 points x 2 replicates at log offsets miss_i +- 0.1 from the law, rows shuffled
    dp = np.array([1.0, 1.0, 4.0, 4.0, 16.0, 16.0])
    miss = np.repeat([0.05, -0.05, 0.1], 2)
    spread = np.tile([0.1, -0.1], 3)
    order = np.array([3, 0, 5, 1, 4, 2])
    y = LAW.predict({"dp": dp}) * np.exp(miss + spread)
    got = lack_of_fit({"dp": dp[order]}, y[order], LAW)
    # SS_pe = 6 x 0.01 on 3 df; SS_lof = 2 x (0.0025 + 0.0025 + 0.01) on 3 - 2 parameters
    f = (2 * 0.015 / 1) / (0.06 / 3)
    assert got["points"] == 3 and got["replicated"] == 3 and got["df"] == [1, 3]
    assert got["F"] == pytest.approx(f) and got["p"] == pytest.approx(stats.f.sf(f, 1, 3))
    assert got["misfit"] == pytest.approx(np.sqrt(0.015 / 3))
    assert got["seed_sd"] == pytest.approx(np.sqrt(0.02))
    assert got["noise"] == pytest.approx(np.sqrt(0.02 / 2))   # a mean of 2 rows
    assert got["misfits"] is False                               # p 0.31
    # with a floor the law has one more parameter: no degree of freedom is left for the misfit
    with_floor = additive(0.01, LAW.terms)
    assert "3 grid points for 3 parameters" in lack_of_fit({"dp": dp}, y, with_floor)["skipped"]


def test_the_seed_spread_is_pooled_over_points_in_log_space():
    # log offsets +-0.1 at two points, +-0.3 at a third: SS 2 x 0.01 x 2 + 2 x 0.09 on 3 df
    dp = np.array([1.0, 1.0, 4.0, 4.0, 16.0, 16.0, 64.0])
    offset = np.array([0.1, -0.1, -0.1, 0.1, 0.3, -0.3, 0.7])  # the last point has one row
    y = LAW.predict({"dp": dp}) * np.exp(offset)
    assert seed_sd({"dp": dp}, y) == pytest.approx(np.sqrt(0.22 / 3))
    assert seed_sd({"dp": dp[[0, 2, 4]]}, y[[0, 2, 4]]) is None    # one row a point


def grid(seeds: int):
    dp, params = np.meshgrid(np.geomspace(10, 1e4, 5), np.geomspace(1e4, 1e6, 4), indexing="ij")
    return {"dp": np.repeat(dp.ravel(), seeds), "params": np.repeat(params.ravel(), seeds)}


TRUE = additive(0.0, {"dp": (1.0, 0.4), "params": (8.0, 0.3)})


@pytest.mark.parametrize("truth, misfits", [
    (TRUE.predict, False),
    # a larger model gains more from pretraining: no sum of one term per input draws it
    (lambda X: TRUE.predict(X) + 0.05 * ((X["params"] / 1e4) ** 0.5 - 1) * X["dp"] ** -0.4, True),
])
def test_the_verdict_tells_noise_from_a_form_that_cannot_draw_the_rows(truth, misfits):
    X = grid(seeds=3)
    y = truth(X) * np.exp(np.random.default_rng(1).normal(0, 0.05, len(X["dp"])))
    law = fit_law(X, y, floor=False).law
    got = lack_of_fit(X, y, law)
    assert got["df"] == [20 - 4, 40] and got["misfits"] is misfits
    if misfits:   # the interaction adds 0-34 % to the error (median 3 %), the noise 5 % a row
        assert got["p"] < 1e-6 and got["misfit"] > 2 * got["noise"]
    else:
        assert got["misfit"] < 1.5 * got["noise"]


@pytest.mark.parametrize("cell, factor", [
    ({"dp": 10.0, "params": 1e6}, 1.25),   # one grid point: an interaction of Dp and size
    ({"dp": 1e4}, 1.1),                    # every size at the largest Dp: an edge (saturation)
])
def test_the_largest_miss_names_the_cell_the_form_cannot_draw(cell, factor):
    X = grid(seeds=2)
    noise = np.random.default_rng(4).normal(0, 0.02, len(X["dp"]))
    planted = np.all([X[k] == v for k, v in cell.items()], axis=0)
    y = TRUE.predict(X) * np.exp(noise) * np.where(planted, factor, 1.0)
    got = lack_of_fit(X, y, TRUE)["largest_miss"]   # judged against the truth
    assert got["at"] == cell
    assert got["miss"] == pytest.approx(np.log(factor) + noise[planted].mean())
    seed_sd = lack_of_fit(X, y, TRUE)["seed_sd"]
    assert got["se"] == pytest.approx(seed_sd / np.sqrt(planted.sum()))


def test_one_seed_gives_no_replicate_spread_to_judge_by():
    X = grid(seeds=1)
    got = lack_of_fit(X, TRUE.predict(X), TRUE)
    assert "no grid point was measured twice" in got["skipped"]


def rows(seeds: int):
    X = grid(seeds)
    y = TRUE.predict(X) * np.exp(np.random.default_rng(2).normal(0, 0.05, len(X["dp"])))
    return [{"dp": a, "params": b, "error": e} for a, b, e in zip(X["dp"], X["params"], y)]


def test_fits_json_and_the_table_carry_the_test():
    form = additive_form(("dp", "params"))
    entry, _ = study.fit_rows(rows(seeds=2), "error", form, bootstrap=0, seed=0,
                              extrapolate=False)
    lof = entry.lack_of_fit
    assert entry.status == "ok" and lof["points"] == 20 and lof["replicated"] == 20
    assert lof["df"][1] == 20
    one, _ = study.fit_rows(rows(seeds=1), "error", form, bootstrap=0, seed=0,
                            extrapolate=False)
    misfit = dict(lof, misfits=True, p=1e-9,   # e^-0.12 = 1 - 0.113
                  largest_miss={"at": {"params": 1e6, "dp": 10.0}, "miss": -0.12, "se": 0.031})
    fits = {"downstream": {"set": {"error": dataclasses.replace(entry, lack_of_fit=misfit),
                                   "loss": dataclasses.replace(one, status="ok")}}}
    text = to_text(tables.lack_of_fit_table(fits))
    error_line, loss_line = [line for line in text.splitlines() if line.startswith("set")]
    assert "20 (20 replicated)" in error_line and "1e-09" in error_line
    assert "misses by more than the seeds' noise" in error_line
    # the cell in words: the inputs in the laws' order, by the paper's names; the miss relative
    assert "Dp 10, M 1M: rows 11.3 % below the law (seed noise ± 3.1 %)" in error_line
    assert "skipped: no grid point was measured twice" in loss_line
    assert "within the seeds' noise" in to_text(tables.lack_of_fit_table(
        {"downstream": {"set": {"error": entry}}}))


@pytest.mark.parametrize("sd", [0.02, 0.077, 0.3])
def test_the_noise_floor_is_the_mape_of_the_true_law_against_noisy_rows(sd):
    rows = np.exp(np.random.default_rng(3).normal(0.0, sd, 400_000))   # the truth is 1
    assert noise_floor(sd) == pytest.approx(np.mean(np.abs(1.0 - rows) / rows), rel=0.01)
    assert noise_floor(0.0) == 0.0


def test_the_extrapolation_check_puts_the_held_out_rows_own_floor_beside_the_mape():
    X = grid(seeds=2)
    y = TRUE.predict(X) * np.exp(np.tile([0.1, -0.1], len(X["dp"]) // 2))   # seed sd 0.141
    check = extrapolation_check(X, y, floor=False)
    assert check["dp"]["noise_floor"] == pytest.approx(noise_floor(np.sqrt(0.02)))
    one = grid(seeds=1)
    assert extrapolation_check(one, TRUE.predict(one), floor=False)["dp"]["noise_floor"] is None
    law = {"status": "ok", "extrapolation": {"dp": {"held_out": 24, "mape": 0.141,
                                                    "noise_floor": 0.0616},
                                             "df": {"skipped": "1 distinct value(s) of df"}}}
    text = to_text(tables.extrapolation_table({"downstream": {"set": {"error": law}}}))
    dp_line, df_line = [line for line in text.splitlines() if line.startswith("set")]
    assert "14.1 %" in dp_line and "6.16 %" in dp_line
    assert "skipped: 1 distinct value(s) of df" in df_line
