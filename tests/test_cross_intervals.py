"""The rules for a slice's D**p interval (laws/intervals.py, boundary.CROSS_INTERVALS): BCa and
the jackknife it reads (laws/fitting.py) -- its levels against the percentile's, the direction it
moves a skewed statistic's interval, its fallbacks to the percentile interval, the boundary
reading it off real fits of small simulated tables -- and the standard interval on the log
scale.

The laws: E + A / Dp^alpha for both stages. With u = Dp^-0.3, F = 3 u - 20 u^2 - 0.02 turns + to -
at u = (3 - sqrt(7.4)) / 40, D**p = 1.5e7 images: 15x past the largest measured Dp (1e6), where
the issue found the percentile interval narrow for low estimates.
"""

import dataclasses
import math

import numpy as np
import pytest

from raysweep.laws import boundary, intervals, study
from raysweep.laws.fitting import JACKKNIFE_GROUPS, TAILS, fit_form, jackknife_groups
from raysweep.laws.form import parse
from raysweep.laws.law import Law

FORM = parse("E + A / dp**alpha", ("dp",))
TRUTHS = {"error": {"E": 0.30, "A": 3.0, "alpha": 0.3},
          "distilled_error": {"E": 0.32, "A": 20.0, "alpha": 0.6}}
DPS = np.geomspace(1e3, 1e6, 6)   # images, measured
DP_RANGE = (10.0, 1e8)            # images, plausible


def rows(name: str, seed: int, reps: int = 3, noise: float = 0.01) -> tuple[dict, np.ndarray]:
    """(X, y) of law NAME's truth at DPS, REPS replicates each, NOISE log-normal."""
    dp = np.repeat(DPS, reps)
    y = Law(FORM, TRUTHS[name]).predict({"dp": dp})
    return {"dp": dp}, y * np.exp(noise * np.random.default_rng(seed).standard_normal(dp.size))


def fits(seed: int, bootstrap: int = 60, jackknife: int = JACKKNIFE_GROUPS) -> dict:
    return {name: fit_form(FORM, *rows(name, seed + i), bootstrap=bootstrap, seed=seed,
                           jackknife=jackknife) for i, name in enumerate(TRUTHS)}


def members(found: dict) -> np.ndarray:
    """Each paired member's D**p as the boundary counts it (0 / inf where it does not cross)."""
    pair = found["error"].ensemble, found["distilled_error"].ensemble
    top = boundary._top(pair, {}, DP_RANGE)
    return intervals.beyond_range(boundary.crossings(*pair, {}, DP_RANGE), top)


def test_levels_are_the_percentiles_without_bias_or_acceleration():
    assert intervals.bca_levels(0.0, 0.0) == pytest.approx(TAILS, rel=1e-12)
    values = np.random.default_rng(0).lognormal(size=99)
    point = float(np.median(values))          # as many members below as above: z0 = 0
    jack = [np.exp([-1.0, 0.0, 1.0])]         # symmetric in log: a = 0
    assert intervals.bias_z0(values, point) == 0.0
    assert intervals.acceleration(jack) == pytest.approx(0.0, abs=1e-12)
    assert intervals.bca_interval(values, point, jack) == pytest.approx(
        intervals.open_percentile(values), rel=1e-12)


def test_bias_and_acceleration_move_the_levels_up():
    """z0 > 0 (members below the point fit) and a > 0 (spread growing with the value) each read
    both ends higher; a = 0.1 alone: Phi(-1.96 / 1.196) = 5.06 %, Phi(1.96 / 0.804) = 99.26 %."""
    lo, hi = intervals.bca_levels(0.0, 0.1)
    assert lo == pytest.approx(5.06, abs=0.01) and hi == pytest.approx(99.26, abs=0.01)
    for z0, a in ((0.2, 0.0), (0.0, 0.05), (0.2, 0.05)):
        moved = intervals.bca_levels(z0, a)
        assert moved[0] > TAILS[0] and moved[1] > TAILS[1]


def test_a_statistic_whose_spread_grows_with_it_gets_an_interval_shifted_up():
    """The variance of 15 normal draws: its sd grows with its value, so the jackknife's a > 0 and
    the percentile interval misses high (a low variance gets a narrow interval). Over 500 data
    sets BCa reads both ends higher and covers the true variance (1) more often."""
    rng = np.random.default_rng(0)
    covered, accelerations, n = {"percentile": 0, "bca": 0}, [], 15
    for d in range(500):
        x = rng.standard_normal(n)
        boots = x[rng.integers(0, n, size=(400, n))].var(axis=1, ddof=1)
        groups = jackknife_groups(n, JACKKNIFE_GROUPS, d)     # 15 rows: delete-one
        jack = np.array([x[groups != k].var(ddof=1) for k in range(n)])
        accelerations.append(intervals.acceleration([jack]))
        plain = intervals.open_percentile(boots)
        bca = intervals.bca_interval(boots, float(x.var(ddof=1)), [jack])
        covered["percentile"] += plain[0] <= 1 <= plain[1]
        covered["bca"] += bca[0] <= 1 <= bca[1]
    assert np.mean(accelerations) > 0.03
    assert covered["bca"] >= covered["percentile"] + 10      # 428 against 405 of 500


@pytest.mark.parametrize("case", ["every member below", "point does not cross", "no jackknife",
                                  "a jackknife value does not cross", "no spread",
                                  "a too large"])
def test_undefined_bias_or_acceleration_reads_the_percentile_interval(case):
    values = np.random.default_rng(1).lognormal(mean=15, size=100)
    point, jack = float(np.median(values)) * 1.1, [np.exp([15.0, 15.2, 15.9])]
    if case == "every member below":
        point = float(values.max()) * 2
    elif case == "point does not cross":
        point = math.inf
    elif case == "no jackknife":
        jack = None
    elif case == "a jackknife value does not cross":
        jack = [np.array([3e6, np.nan, 4e6]), np.array([3e6, 4e6])]
    elif case == "no spread":
        jack = [np.full(5, 3e6)]
    else:   # a <= 1/6 always (sum U^3 <= (sum U^2)^1.5), so 1 - a (z0 + 1.96) <= 0 needs z0 >= 4:
        # all but one of 100,000 members below the point (z0 = 4.26) and one jackknife value far
        # below 999 others (a = 0.166)
        values = np.random.default_rng(1).lognormal(mean=15, size=100_000)
        point = float(np.mean(np.sort(values)[-2:]))
        jack = [np.exp(np.r_[np.zeros(999), -50.0])]
    assert intervals.bca_interval(values, point, jack) == intervals.open_percentile(values)
    if case == "a too large":
        assert intervals.bca_levels(intervals.bias_z0(values, point),
                                    intervals.acceleration(jack)) is None


def test_jackknife_groups_are_deterministic_and_balanced():
    groups = jackknife_groups(192, JACKKNIFE_GROUPS, 0)
    assert np.array_equal(groups, jackknife_groups(192, JACKKNIFE_GROUPS, 0))
    assert not np.array_equal(groups, jackknife_groups(192, JACKKNIFE_GROUPS, 1))
    sizes = np.bincount(groups)
    assert len(sizes) == JACKKNIFE_GROUPS and set(sizes) == {9, 10}   # 192 = 12 x 10 + 8 x 9
    assert set(np.bincount(jackknife_groups(7, JACKKNIFE_GROUPS, 0))) == {1}  # delete-one


def test_each_jackknife_law_is_the_fit_without_its_group():
    X, y = rows("error", 0)
    fit = fit_form(FORM, X, y, bootstrap=10, seed=3, jackknife=6)
    groups = jackknife_groups(len(y), 6, 3)
    assert len(fit.jackknife) == 6
    for k in (0, 5):
        alone = fit_form(FORM, {"dp": X["dp"][groups != k]}, y[groups != k]).law.values
        assert fit.jackknife[k].values == pytest.approx(alone, rel=1e-5)
    assert fit_form(FORM, X, y, bootstrap=10, seed=3).jackknife is None   # only when asked


def test_the_boundary_reads_bca_off_real_fits_and_the_same_rows_give_the_same_interval(
        monkeypatch):
    monkeypatch.setattr(boundary, "CROSS_INTERVAL", "bca")
    found = fits(seed=0)
    out = boundary.slice_boundary(found["error"], found["distilled_error"], {}, DPS, DP_RANGE)
    jack = boundary._jackknife_crosses(found["error"], found["distilled_error"], {}, DP_RANGE)
    assert [len(j) for j in jack] == [18, 18] and np.all(np.isfinite(jack))  # 18 rows: delete-one
    want = intervals.bca_interval(members(found), out["d_cross"], jack)
    assert out["d_cross_ci"] == want and want != intervals.open_percentile(members(found))
    again = fits(seed=0)
    assert boundary.slice_boundary(again["error"], again["distilled_error"], {}, DPS,
                                   DP_RANGE)["d_cross_ci"] == out["d_cross_ci"]


def test_a_jackknife_law_that_does_not_cross_reads_the_percentile_interval(monkeypatch):
    monkeypatch.setattr(boundary, "CROSS_INTERVAL", "bca")
    found = fits(seed=0)
    never = Law(FORM, {"E": 0.9, "A": 3.0, "alpha": 0.3})     # plain far worse: F > 0 throughout
    plain = dataclasses.replace(found["error"], jackknife=[never] + found["error"].jackknife[1:])
    out = boundary.slice_boundary(plain, found["distilled_error"], {}, DPS, DP_RANGE)
    assert out["d_cross_ci"] == intervals.open_percentile(members(found))


def test_the_log_scale_interval_is_the_point_times_the_members_spread_and_opens_as_theirs():
    rng = np.random.default_rng(2)
    values, point = rng.lognormal(mean=15, sigma=0.3, size=100), 3e6
    half = 1.959963984540054 * np.std(np.log(values), ddof=1)
    assert intervals.normal_log_interval(values, point) == pytest.approx(
        (point * math.exp(-half), point * math.exp(half)), rel=1e-12)
    for side, beyond in (("below", 0.0), ("above", math.inf)):
        some = values.copy()
        some[:3] = beyond                  # 3 % of the members beyond an end: open there alone
        lo, hi = intervals.normal_log_interval(some, point)
        assert (lo == 0) is (side == "below") and (hi == math.inf) is (side == "above")
        assert 0 < (hi if side == "below" else lo) < math.inf
    assert intervals.normal_log_interval(values, math.inf) == intervals.open_percentile(values)


@pytest.mark.parametrize("rule", sorted(boundary.CROSS_INTERVALS))
def test_a_study_fits_the_jackknife_its_rule_reads_and_the_slice_reads_that_rule(rule,
                                                                               monkeypatch):
    """study.fit_rows (every fit a study makes) refits the jackknife only for a rule that reads
    one (BCa), so the default pays for none; the slice's interval is the rule's."""
    monkeypatch.setattr(boundary, "CROSS_INTERVAL", rule)
    found = {}
    for i, name in enumerate(TRUTHS):
        X, y = rows(name, i)
        table = [{"dp": dp, "error": e} for dp, e in zip(X["dp"], y)]
        found[name] = study.fit_rows(table, "error", FORM, bootstrap=30, seed=0,
                                     extrapolate=False)[1]
        assert len(found[name].jackknife or ()) == (18 if rule == "bca" else 0)  # delete-one
    out = boundary.slice_boundary(found["error"], found["distilled_error"], {}, DPS, DP_RANGE)
    jack = boundary._jackknife_crosses(found["error"], found["distilled_error"], {}, DP_RANGE)
    want = boundary.CROSS_INTERVALS[rule](members(found), out["d_cross"], jack)
    assert out["d_cross_ci"] == want
    assert (want == intervals.open_percentile(members(found))) is (rule == "percentile")


def test_the_default_rule_is_the_percentile():
    assert boundary.CROSS_INTERVAL == "percentile" and boundary.jackknife_refits() == 0
