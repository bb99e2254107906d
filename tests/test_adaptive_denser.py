"""The plain denser row the design rule weighs every pick against (adaptive/denser.py): where it
sits, what it holds, and that the rule takes it exactly where its own pick is not credibly
better under the bootstrap members."""

import math

import pytest
from test_adaptive import one_slice_raw
from test_design_rule import grid_situation

from raysweep.adaptive import choice, denser, information
from raysweep.adaptive import design as dr
from raysweep.sweep import plan

DS = "cifar100"


@pytest.fixture
def sit(tmp_path):
    """The grid of a 4-head student, one teacher, 2 Df, 5 Dp values, fitted with 30 resamples."""
    return grid_situation({**one_slice_raw(noise=0.005), "df": [0.5, 1.0]}, str(tmp_path), 3)


def taken(sit) -> set[str]:
    return set(sit.done) | {r["trial_id"] for r in sit.rows}


def test_the_row_halves_the_widest_log_gap_and_completes_a_measured_dp_beside_it():
    # gaps 100k-400k (x4) and 400k-800k (x2): the midpoint of the first, sqrt(100k x 400k)
    assert denser.row_dp([100_000, 400_000, 800_000], [], 0.002) == 200_000
    # a measured Dp 0.1 % away (0.0004 decades) takes its place, one 1 % away (0.004) does not
    assert denser.row_dp([100_000, 400_000, 800_000], [200_200], 0.002) == 200_200
    assert denser.row_dp([100_000, 400_000, 800_000], [202_000], 0.002) == 200_000
    assert denser.row_dp([100_000], [100_000], 0.002) is None


def test_full_rows_are_the_dps_whose_whole_row_has_run_or_is_picked(sit):
    grid = sorted({r["dp"] for r in sit.rows})
    assert len(grid) == 5 and denser.full_rows(sit.sweep, sit.rows, DS, taken(sit)) == grid
    one = next(t for t in plan.plan(sit.sweep, [grid[2]]) if t.stage == "distill")
    assert denser.full_rows(sit.sweep, sit.rows, DS, taken(sit) - {one.trial_id}) == (
        grid[:2] + grid[3:])


def test_the_denser_row_is_the_sweeps_row_at_the_midpoint_with_what_it_lacks(sit):
    grid = sorted({r["dp"] for r in sit.rows})
    row = dr._denser_row(sit, DS, grid, taken(sit))
    logs = [math.log(d) for d in grid]
    widest = max(range(4), key=lambda i: logs[i + 1] - logs[i])
    assert row.dp == round(math.sqrt(grid[widest] * grid[widest + 1])) and row.shape == "row"
    assert {t.trial_id for t in row.trials} == {t.trial_id for t in plan.plan(sit.sweep, [row.dp])}
    assert len(row.members) == 4    # 2 Df x (the 4-head fine-tune, the pair 4 <- 2)
    assert all(c.reason == dr.DENSER and c.replicate == 0 for c in row.members)
    # half of it picked already: the rest of the row, at its first replicate, not a replicate
    planner = plan.Planner(sit.sweep)
    half = {i for c in row.members[:2] for i in choice.pair_ids(planner, c)}
    rest = dr._denser_row(sit, DS, grid, taken(sit) | half)
    assert rest.members == row.members[2:]


def test_the_rule_takes_the_row_unless_its_pick_beats_it_under_enough_members(sit, monkeypatch):
    plain = dr.design_rule(sit)
    assert plain and all(c.reason == dr.REASON for c in plain)
    monkeypatch.setattr(denser, "CREDIBLE", 0.0)      # every pick credible: the rule unchanged
    assert dr.design_rule(sit, row_test=True) == plain
    monkeypatch.setattr(denser, "CREDIBLE", 1.01)     # none credible: the grid, refined
    rows = dr.design_rule(sit, row_test=True)
    assert rows and all(c.reason == dr.DENSER and c.shape == "row" for c in rows)
    grid = sorted({r["dp"] for r in sit.rows})
    expect, full = [], list(grid)
    for _ in range(len({c.dp for c in rows})):      # each row halves the widest gap left
        expect.append(denser.row_dp(full, grid, choice.REPEAT_GAP))
        full = sorted([*full, expect[-1]])
    assert list(dict.fromkeys(c.dp for c in rows)) == expect and len(expect) >= 3


def test_credible_counts_the_members_under_which_the_pick_beats_the_row(sit, monkeypatch):
    rows, targets = sit.rows, sit.targets
    laws = {DS: information.Laws(sit.fits[DS], rows, targets)}
    members = {DS: denser.member_laws(sit.fits[DS], rows, targets)}
    assert len(members[DS]) == min(denser.MEMBERS, len(sit.fits[DS]["error"].ensemble))
    options = [o for o in dr._options(sit, [DS], [sorted({r["dp"] for r in rows})[1]],
                                      taken(sit)) if o.shape in ("pair", "row")]
    jac = information.trial_jacobians(laws, {t.trial_id: t for o in options for t in o.trials})
    scored = [dr._best([o], laws, jac, taken(sit), math.inf, len, "FLOP") for o in options]
    pick, row = (next(s for s in scored if s[1].shape == shape) for shape in ("pair", "row"))
    sane = [m for m in members[DS] if m]            # a wild member counts against the pick
    assert len(sane) >= len(members[DS]) // 2
    wins = [denser._score(m, pick, "FLOP") > denser._score(m, row, "FLOP") for m in sane]
    share = sum(wins) / len(members[DS])
    # the members' laws are not the point fit's: their scores are their own
    scores = [denser._score(m, pick, "FLOP") for m in sane]
    assert min(scores) > 0 and max(scores) > 1.01 * min(scores)
    monkeypatch.setattr(denser, "CREDIBLE", share)
    assert denser.credible(pick, row, members, "FLOP")
    monkeypatch.setattr(denser, "CREDIBLE", share + 0.5 / len(members[DS]))
    assert not denser.credible(pick, row, members, "FLOP")
    # no ensemble: the point scores decide
    assert denser.credible(pick, row, {}, "FLOP") == (pick[0] > row[0])
