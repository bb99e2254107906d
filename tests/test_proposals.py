"""The proposal rule on hand-made ensembles."""

import numpy as np

from raysweep import proposals


def ensemble(crossings: np.ndarray, dps: np.ndarray) -> np.ndarray:
    """Members F_i(Dp) = log(c_i / Dp): each crosses zero at its own c_i, positive before it."""
    return np.log(crossings[:, None] / dps[None, :])


def test_proposals_land_in_the_uncertain_band_are_distinct_and_in_range():
    rng = np.random.default_rng(0)
    dps = proposals.candidate_dps(1e3, 1e6)
    crossings = np.exp(rng.normal(np.log(5e4), 0.3, size=200))   # D**p ~ 5e4, spread ~ 35 %
    f = ensemble(crossings, dps)
    cands = proposals.score_slice(("a",), f, dps, np.ones_like(dps, dtype=float))
    chosen = proposals.pick(cands, k=4, min_gap=0.05)
    assert len(chosen) == 4
    lo, hi = np.percentile(crossings, [2.5, 97.5])
    for c in chosen:
        assert lo <= c.dp <= hi                        # inside the band where the sign is unsure
        assert 1e3 <= c.dp <= 1e6
        assert 0.025 < c.p_positive < 0.975
    chosen_dp = sorted(c.dp for c in chosen)
    assert len(set(chosen_dp)) == 4
    assert np.all(np.diff(np.log10(chosen_dp)) >= 0.05)   # spread, not stacked
    best = max(cands, key=lambda c: c.score)
    assert abs(np.log(best.dp / np.median(crossings))) < 0.2  # the best is at the median crossing


def test_no_proposal_where_the_ensemble_agrees():
    dps = proposals.candidate_dps(1e3, 1e6)
    f = ensemble(np.full(50, 1e9), dps)         # every member: distillation wins everywhere
    assert proposals.score_slice(("a",), f, dps, np.ones(len(dps))) == []


def test_where_uncertainty_is_equal_the_cheaper_dp_wins():
    dps = proposals.candidate_dps(1e3, 1e6)
    z = np.random.default_rng(1).normal(size=(200, 1))
    f = np.repeat(z, len(dps), axis=1)            # the same uncertain sign at every Dp
    cost = proposals.relative_cost(dps.astype(float), 10.0, 1.0)
    (priced,) = proposals.pick(proposals.score_slice(("a",), f, dps, cost), 1)
    assert priced.dp == dps[0]
    (free,) = proposals.pick(proposals.score_slice(("a",), f * (1 + 1e-3 * np.log(dps)), dps,
                                                    np.ones(len(dps))), 1)
    assert free.dp == dps[-1]                    # without cost, a hair more spread wins


def test_pick_spreads_within_a_slice_but_not_across_slices():
    c = [proposals.Candidate(("a",), 1000, 1.0, 0.5), proposals.Candidate(("a",), 1010, 0.9, 0.5),
         proposals.Candidate(("b",), 1000, 0.8, 0.5)]
    chosen = proposals.pick(c, k=3, min_gap=0.1)
    assert [(x.slice_key, x.dp) for x in chosen] == [(("a",), 1000), (("b",), 1000)]
