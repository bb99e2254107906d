"""The proposal rule on hand-made ensembles."""

import numpy as np

from raysweep.adaptive import proposals


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


def test_cost_moves_the_choice_towards_cheaper_dp_but_not_out_of_the_band():
    dps = proposals.candidate_dps(1e3, 1e6)
    crossings = np.geomspace(2e3, 5e5, 400)      # D**p anywhere over 2.4 decades
    f = ensemble(crossings, dps)
    (free,) = proposals.pick(proposals.score_slice(("a",), f, dps, np.ones(len(dps))), 1)
    cost = 10.0 * dps + 1.0   # pretraining 10 images a Dp image, fine-tuning 1 (images seen)
    (priced,) = proposals.pick(proposals.score_slice(("a",), f, dps, cost), 1)
    assert abs(np.log(free.dp / np.median(crossings))) < 0.05   # without cost: the median
    # score ~ (log10 Dp - 3.3) / sqrt(Dp) below the median peaks at 10^(3.3 + 2/ln 10) ~ 1.5e4
    assert 1.2e4 < priced.dp < free.dp / 1.5
    assert priced.dp >= np.percentile(crossings, 2.5)


def test_members_that_never_cross_or_overflow_count_for_nothing():
    dps = proposals.candidate_dps(1e3, 1e6)
    crossing = ensemble(np.full(50, 3e4), dps)
    crossing[:, 0] = np.nan                      # an overflowed end does not hide the crossing
    never = np.full((150, len(dps)), np.nan)     # wild members: NaN everywhere
    cands = proposals.score_slice(("a",), np.vstack([crossing, never]), dps, np.ones(len(dps)))
    assert cands == []                            # 50 members agree on one D**p: nothing unsure
    spread = ensemble(np.geomspace(1e4, 1e5, 50), dps)
    cands = proposals.score_slice(("a",), np.vstack([spread, never]), dps, np.ones(len(dps)))
    best = max(cands, key=lambda c: c.score)
    assert best.p_positive == 0.5                 # 25 of the 50 crossing members, not of 200


def test_pick_spreads_within_a_slice_but_not_across_slices():
    c = [proposals.Candidate(("a",), 1000, 1.0, 0.5), proposals.Candidate(("a",), 1010, 0.9, 0.5),
         proposals.Candidate(("b",), 1000, 0.8, 0.5)]
    chosen = proposals.pick(c, k=3, min_gap=0.1)
    assert [(x.slice_key, x.dp) for x in chosen] == [(("a",), 1000), (("b",), 1000)]
