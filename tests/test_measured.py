"""raysweep.laws.measured: what the seed replicates say without a law -- the model-free crossing
of the measured differences with its interval (pooled or moderated spreads), and Theorem 1's
pattern at the two ends of the measured Dp. (Each slice carrying them: tests/test_boundary.py.)"""

import math

import numpy as np
import pytest
from scipy import special

from raysweep.laws import measured


@pytest.mark.parametrize("dp, diff, want", [
    ([1e3, 1e4, 1e5], [0.02, 0.01, -0.01], 10 ** 4.5),    # halfway in log Dp
    ([1e5, 1e3, 1e4], [-0.03, 0.02, 0.01], 10 ** 4.25),   # unsorted; a quarter of the way
    ([1e3, 1e4, 1e5], [-0.01, 0.01, 0.02], None),          # - to + is not the boundary
    ([1e3, 1e4], [0.01, 0.02], None),                      # never changes sign
    ([1e3, 1e4, 1e5], [-0.01, 0.01, -0.01], 10 ** 4.5),   # the first + to - counts
])
def test_model_free_cross(dp, diff, want):
    got = measured.model_free_cross(np.array(dp), np.array(diff))
    assert got == (None if want is None else pytest.approx(want, rel=1e-12))


def replicated(means: dict, sd: float, seeds: int, rng) -> dict:
    """Dp -> SEEDS paired differences drawn around MEANS[Dp] with spread SD."""
    return {dp: list(m + sd * rng.standard_normal(seeds)) for dp, m in means.items()}


# A difference that turns + to - between 1e3 and 1e4 images: at 10 ** 3.5 by the straight line.
TURNING = {1e2: 0.04, 1e3: 0.02, 1e4: -0.02, 1e5: -0.04}


def test_model_free_interval_holds_the_crossing_and_narrows_with_seeds():
    rng = np.random.default_rng(3)
    few = measured.model_free(replicated(TURNING, 0.01, 2, rng))
    many = measured.model_free(replicated(TURNING, 0.01, 32, rng))
    for out in (few, many):
        lo, hi = out["model_free_cross_ci"]
        assert lo <= out["model_free_cross"] <= hi
        assert 1e2 < lo < 10 ** 3.5 < hi < 1e5  # around the noise-free turn
    assert 1e3 < many["model_free_cross_ci"][0] < many["model_free_cross_ci"][1] < 1e4
    assert math.log(many["model_free_cross_ci"][1] / many["model_free_cross_ci"][0]) < \
        0.5 * math.log(few["model_free_cross_ci"][1] / few["model_free_cross_ci"][0])
    assert many["model_free_no_cross_fraction"] == 0.0


def test_model_free_interval_says_how_often_noise_alone_would_cross():
    """Differences of 0 +- noise cross in about as many draws as not; a clear turn in all."""
    rng = np.random.default_rng(4)
    flat = measured.model_free(replicated({d: 0.0 for d in TURNING}, 0.01, 3, rng))
    clear = measured.model_free(replicated(TURNING, 0.002, 3, rng))
    assert 0.2 < flat["model_free_no_cross_fraction"] < 0.8
    assert clear["model_free_no_cross_fraction"] < 0.01


def test_model_free_interval_needs_a_spread_and_is_reproducible():
    one_seed = measured.model_free({dp: [m] for dp, m in TURNING.items()})
    assert one_seed["model_free_cross"] == pytest.approx(10 ** 3.5)
    assert one_seed["model_free_cross_ci"] is None and "one seed" in one_seed["model_free_note"]
    rows = replicated(TURNING, 0.01, 2, np.random.default_rng(5))
    assert measured.model_free(rows) == measured.model_free(rows)
    never = measured.model_free(replicated({1e3: 0.05, 1e4: 0.04}, 0.001, 2,
                                           np.random.default_rng(6)))
    assert never["model_free_cross"] is None and never["model_free_cross_ci"] is None
    assert never["model_free_no_cross_fraction"] == 1.0


def test_spreads_that_agree_are_pooled_and_a_loud_dp_is_kept_to_itself():
    """Seeds as spread at every Dp: one spread, as before. Seeds loud at the largest Dp only and
    quiet around the turn: the turn's interval reads the quiet spread, not the pooled one."""
    rng = np.random.default_rng(7)
    even = measured.model_free(replicated(TURNING, 0.01, 3, rng))
    assert even["model_free_spread"].startswith("pooled")
    assert even["model_free_cross_ci"] == measured.model_free(
        replicated(TURNING, 0.01, 3, np.random.default_rng(7)), pool=True)["model_free_cross_ci"]
    quiet = replicated(TURNING, 0.002, 3, rng)
    loud = quiet | {1e5: list(-0.04 + 0.08 * rng.standard_normal(3))}
    moderated, pooled = measured.model_free(loud), measured.model_free(loud, pool=True)
    assert moderated["model_free_spread"].startswith("per Dp, moderated")
    (lo, hi), (plo, phi) = moderated["model_free_cross_ci"], pooled["model_free_cross_ci"]
    assert lo <= moderated["model_free_cross"] <= hi
    assert math.log(hi / lo) < 0.5 * math.log(phi / plo)


def test_variance_prior_recovers_the_spread_of_spreads():
    """Sample variances on 3 degrees of freedom around true variances drawn from a scaled
    inverse chi^2 (4 degrees of freedom, scale 0.01^2): the moments of log s^2 find both."""
    rng = np.random.default_rng(8)
    true = 4 * 1e-4 / rng.chisquare(4, size=50000)
    s2 = true * rng.chisquare(3, size=true.size) / 3
    d0, s0 = measured._variance_prior(s2, np.full(s2.size, 3.0))
    assert d0 == pytest.approx(4, rel=0.1) and s0 == pytest.approx(1e-4, rel=0.05)
    assert measured._variance_prior(1e-4 * rng.chisquare(3, size=5000) / 3,
                                    np.full(5000, 3.0)) is None   # one variance: no scatter
    for x in (1e-3, 0.5, 4.0, 100.0):
        assert float(special.polygamma(1, measured._trigamma_inverse(x))) == pytest.approx(x)


def test_measured_ends_tell_theorem1_by_seed_standard_errors():
    helps_then_hurts = {100: [0.05, 0.07, 0.06], 1_000: [0.0, 0.01], 10_000: [-0.04, -0.05, -0.06]}
    out = measured.measured_ends(helps_then_hurts)
    small, large = out["measured_ends"]["smallest"], out["measured_ends"]["largest"]
    assert (small["dp"], small["seeds"], large["dp"], large["seeds"]) == (100, 3, 10_000, 3)
    assert small["mean"] == pytest.approx(0.06) and large["mean"] == pytest.approx(-0.05)
    assert small["se"] == pytest.approx(0.01 / math.sqrt(3))
    assert out["theorem1"] is True
    # the same means with seeds spread so that the smallest Dp's help is within 2 se of 0
    noisy = helps_then_hurts | {100: [0.0, 0.18, 0.0]}
    assert measured.measured_ends(noisy)["theorem1"] is False
    hurts_everywhere = {100: [-0.02, -0.03], 10_000: [-0.04, -0.05]}
    assert measured.measured_ends(hurts_everywhere)["theorem1"] is False


@pytest.mark.parametrize("per_dp", [{100: [0.05], 10_000: [-0.04, -0.05]},  # one seed at an end
                                    {100: [0.05, 0.06]}, {}])                # fewer than 2 Dp
def test_measured_ends_cannot_tell_without_two_dp_and_two_seeds(per_dp):
    out = measured.measured_ends(per_dp)
    assert out["theorem1"] is None
    assert (out["measured_ends"] is None) is (len(per_dp) < 2)
