"""The design rule: its delta-method pieces against brute force, where it puts pairs, and a
simulated run with it that converges on an interval covering the known D**p."""

import math

import numpy as np
import pytest
from test_adaptive import REPORTED, counting_runner, one_slice_raw, true_cross

from raysweep.adaptive import choice
from raysweep.adaptive import design as dr
from raysweep.adaptive import loop as adaptive
from raysweep.laws import boundary as bnd
from raysweep.laws.fitting import Fit, Law
from raysweep.store import results
from raysweep.sweep import plan, spec

PLAIN = Law(0.05, {"dp": (6.0, 0.35), "params": (40.0, 0.30), "df": (2.0, 0.40)})
DISTILLED = Law(0.067, {"dp": (18.6, 0.50), "params": (40.0, 0.30), "df": (2.0, 0.40)})
FIXED = {"params": 5e6, "df": 5e4, "teacher_params": 2e6}


def as_fit(law: Law) -> Fit:
    return Fit(law, 0.0, 0, tuple(law.terms), None, None)


def theta(law: Law) -> np.ndarray:
    names = list(law.terms)
    return np.array([math.log(law.E)] + [math.log(law.terms[k][0]) for k in names]
                    + [law.terms[k][1] for k in names])


def law_at(t: np.ndarray, names: list[str]) -> Law:
    k = len(names)
    return Law(math.exp(t[0]), {n: (math.exp(t[1 + i]), t[1 + k + i]) for i, n in enumerate(names)})


def grid_situation(raw: dict, out: str, batch: int) -> choice.Situation:
    sweep = spec.parse(raw)
    adaptive.inline_runner(out)(plan.plan(sweep))
    rows = bnd.ok_rows(results.read(out))
    fits, slices = choice.fit_boundary(rows, bootstrap=30)
    return choice.Situation(sweep, fits, slices, choice.measured_dps(rows),
                            choice.dp_range(sweep), batch, rows)


def test_the_gradient_of_log_dpp_matches_finite_differences():
    fits = {"error": as_fit(PLAIN), "distilled_error": as_fit(DISTILLED)}
    grads = dr.cross_gradient(fits, FIXED)
    base = math.log(bnd.d_cross(PLAIN, DISTILLED, FIXED, (1e3, 1e8)))
    for i, name in enumerate(choice.BOUNDARY_LAWS):
        law = fits[name].law
        for j in range(len(theta(law))):
            step = np.zeros(len(theta(law)))
            step[j] = 1e-6
            moved = law_at(theta(law) + step, list(law.terms))
            pair = (moved, DISTILLED) if i == 0 else (PLAIN, moved)
            numeric = (math.log(bnd.d_cross(*pair, FIXED, (1e3, 1e8))) - base) / 1e-6
            assert grads[i][j] == pytest.approx(numeric, rel=1e-3, abs=1e-6), (name, j)


def test_no_gradient_where_the_laws_do_not_cross():
    never = Law(0.01, DISTILLED.terms)      # distillation wins everywhere
    assert dr.cross_gradient({"error": as_fit(PLAIN), "distilled_error": as_fit(never)},
                             FIXED) is None


def test_a_pairs_drop_is_the_exact_change_of_the_summed_variance(tmp_path):
    sit = grid_situation(one_slice_raw(noise=0.005), str(tmp_path), batch=2)
    ds = sit.targets[0]["downstream"]
    laws = dr._Laws(sit.fits[ds], sit.rows, sit.targets)

    def summed(extra: list[dict], copies: int) -> float:
        total = 0.0
        for i, name in enumerate(choice.BOUNDARY_LAWS):
            stage = "finetune" if name == "error" else "distill"
            xs = [r for r in sit.rows if r["stage"] == stage] + extra * copies
            J = dr.log_jacobian(sit.fits[ds][name], xs)
            inv = np.linalg.inv(J.T @ J)
            total += sum(g[i] @ inv @ g[i] for g in laws.grads)
        return total

    xs = [bnd.fixed_inputs(sit.targets[0]) | {"dp": dp} for dp in (7e4, 2.5e5, 1.2e6)]
    before = summed([], 1)
    drops = laws.drops(xs, copies=2)
    assert drops == pytest.approx([before - summed([x], 2) for x in xs], rel=1e-6)
    assert len(set(np.round(drops, 12))) == 3 and np.all(drops > 0)
    laws.add(xs[1], copies=2)                       # the pick joins the information
    assert laws.drops(xs, copies=2) == pytest.approx(
        [summed([xs[1]], 2) - summed([xs[1], x], 2) for x in xs], rel=1e-6)


def test_pairs_of_one_student_share_its_pretrainings_at_one_dp(tmp_path):
    # Two slices (Df = 25,000 and 50,000), one student and one teacher: the second pair of a
    # round goes to the other slice at the first pair's Dp, where it costs 2 trials, not 4.
    sit = grid_situation({**one_slice_raw(noise=0.005), "df": [0.5, 1.0]}, str(tmp_path), 2)
    assert len(sit.targets) == 2
    first, second = dr.design_rule(sit)
    assert first.slice_key != second.slice_key and first.dp == second.dp
    assert len(choice.pair_trials(sit.sweep, [first, second])) == 6
    # score = drop / trials added: 4 for the first (2 pretrainings + the pair), 2 for the second
    laws = dr._Laws(sit.fits["cifar100"], sit.rows, sit.targets)
    at = {c.slice_key: bnd.fixed_inputs(s) | {"dp": float(first.dp)}
          for s in sit.targets for c in (first, second) if bnd.slice_key(s) == c.slice_key}
    assert first.score == pytest.approx(laws.drops([at[first.slice_key]], 1)[0] / 4, rel=1e-9)
    laws.add(at[first.slice_key], 1)
    assert second.score == pytest.approx(laws.drops([at[second.slice_key]], 1)[0] / 2, rel=1e-9)
    lo, hi = sit.dp_range
    assert lo <= first.dp <= hi and first.reason == dr.REASON and 0 <= first.p_positive <= 1


def test_a_simulated_run_with_the_design_rule_converges_on_the_truth(tmp_path):
    sweep = spec.parse(one_slice_raw(noise=0.003))
    truth = true_cross(sweep)
    lines, launched = [], []
    doc = adaptive.rounds(sweep, str(tmp_path), counting_runner(str(tmp_path), launched),
                          budget=120, batch=4, tol=0.2, bootstrap=30, echo=lines.append,
                          choose=dr.design_rule)
    (final,) = doc["boundary"]
    lo, hi = final["d_cross_ci"]
    assert doc["stopped"] == "every chased slice's D**p interval is within --tol"
    assert (hi - lo) / final["d_cross"] <= 0.2 and lo <= truth <= hi
    assert len(doc["rounds"]) >= 2
    for rnd in doc["rounds"][1:]:
        seen = [(p["dp"], p["replicate"]) for p in rnd["proposals"]]
        assert rnd["proposals"] and all(set(p) == REPORTED for p in rnd["proposals"])
        assert len(set(seen)) == len(seen) and all(65_000 <= d <= 1_300_000 for d, _ in seen)
    assert doc["trials_run"] == len(launched) == len(set(launched)) == doc["trials_total"]
    assert "largest expected drop of the D**p intervals per trial" in lines[1]
