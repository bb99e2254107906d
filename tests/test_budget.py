"""--budget in the user's currency: trials, FLOPs, GPU-hours or a multiple of the grid; the rounds
spend no more than it and say in every round line and in adaptive.json what is spent and left."""

import json

import pytest
from test_adaptive import one_slice_raw

from raysweep.adaptive import budget
from raysweep.adaptive import loop as adaptive
from raysweep.errors import InputError
from raysweep.sweep import plan, spec

GRID = 3.0e17   # FLOPs of a made-up grid, for 1x


@pytest.mark.parametrize("text, unit, amount", [
    ("120", "trials", 120), ("120trials", "trials", 120), ("2e18", "FLOPs", 2e18),
    ("2E+18flops", "FLOPs", 2e18), ("1.5e18 FLOPs", "FLOPs", 1.5e18), ("3flop", "FLOPs", 3),
    ("40gpuh", "FLOPs", 40 * 3600 * budget.THROUGHPUT), ("1x", "FLOPs", GRID),
    ("0.5x", "FLOPs", 0.5 * GRID), ("0", "trials", 0),
])
def test_every_form_of_budget_reads_as_trials_or_flops(text, unit, amount):
    b = budget.parse(text, GRID)
    assert (b.unit, b.text) == (unit, text) and b.amount == pytest.approx(amount)


def test_gpu_hours_convert_at_the_given_throughput():
    assert budget.parse("2gpuh", GRID, throughput=5e13).amount == pytest.approx(2 * 3600 * 5e13)
    with pytest.raises(InputError, match="--throughput must be > 0"):
        budget.parse("2gpuh", GRID, throughput=0)


@pytest.mark.parametrize("text", ["-1", "1.5", "ten", "2e18 GPUs", "x", "", "1e"])
def test_a_malformed_budget_is_refused_naming_the_forms(text):
    with pytest.raises(InputError) as err:
        budget.parse(text, GRID)
    assert f"--budget {text!r}" in str(err.value) and "GPU-hours (40gpuh)" in str(err.value)


def test_a_budget_counts_trials_or_sums_their_flops():
    trials = plan.plan(spec.parse(one_slice_raw(noise=0.0)))
    assert budget.parse("5", GRID).cost(trials) == len(trials) == 20
    assert budget.parse("1e20", GRID).cost(trials) == sum(t.flops for t in trials) > 0
    words = budget.Budget("FLOPs", 4e17, "4e17").words(1e17)
    assert words == "spent 1e+17 of 4e+17 FLOPs (25%)"


def test_rounds_under_a_flop_budget_spend_no_more_and_say_what_is_left(tmp_path):
    sweep, out = spec.parse(one_slice_raw(noise=0.001)), str(tmp_path)
    grid = sum(t.flops for t in plan.plan(sweep))
    limit = budget.parse("0.3x", grid)
    lines = []
    # tol 0.01 is out of reach: only the budget stops the rounds
    doc = adaptive.rounds(sweep, out, adaptive.inline_runner(out), limit, batch=2, tol=0.01,
                          bootstrap=20, echo=lines.append, verbose=True)
    assert doc["stopped"].startswith("budget spent: ") and "FLOPs left" in doc["stopped"]
    rounds = doc["rounds"][1:]
    assert rounds and all(r["flops_run"] > 0 for r in rounds)
    spent = sum(r["flops_run"] for r in rounds)
    assert doc["budget"] == {"given": "0.3x", "unit": "FLOPs", "amount": pytest.approx(0.3 * grid),
                             "spent": pytest.approx(spent), "left": pytest.approx(0.3 * grid - spent)}
    assert 0 < spent <= 0.3 * grid
    assert doc["flops_run"] == pytest.approx(grid + spent)
    # every round's --verbose line says what it ran and how much of the budget is gone
    full = [line for line in lines if line.startswith("  round ")]
    assert len(full) == len(doc["rounds"])
    assert all(" FLOPs (spent " in line and " of 9e" not in line for line in full[1:])
    assert f"spent {spent:.3g} of {0.3 * grid:.3g} FLOPs" in full[-1]
    assert json.loads((tmp_path / "adaptive.json").read_text())["budget"]["left"] == \
        pytest.approx(0.3 * grid - spent)
