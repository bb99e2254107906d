"""raysweep.boundary: D*p and D**p against closed forms, every status, and the whole path from
simulated grid rows through fitted laws to boundary intervals (the model-free crossing and
Theorem 1's ends alone: tests/test_measured.py).

The closed forms: with alpha' = 2 alpha and u = Dp^-alpha, F = c u - c' u^2 + Delta is a quadratic
in u, so F = 0 at u = (c -+ sqrt(c^2 + 4 c' Delta)) / (2 c') and F peaks at u = c / (2 c').
"""

import json
import math

import numpy as np
import pytest

from raysweep.laws import boundary
from raysweep.laws.fitting import fit_law
from raysweep.laws.law import Fit, Law
from raysweep.laws.law import additive as law_of
from raysweep.laws.slices import Slice
from raysweep.sweep.simulate import law_value

STUDENT_PARAMS, TEACHER_PARAMS, DF = 4.6e6, 1.3e6, 500.0  # parameters, parameters, images
FIXED = {"params": STUDENT_PARAMS, "df": DF, "teacher_params": TEACHER_PARAMS}
# The paper's regime (alpha < alpha', E < E'): F < 0, then > 0 from ~1.3k to ~73k images, then < 0.
PLAIN = law_of(0.10, {"dp": (3.0, 0.3), "params": (6.0, 0.3), "df": (0.5, 0.3)})
DISTILLED = law_of(0.12, {"dp": (20.0, 0.6), "params": (6.0, 0.3), "df": (0.5, 0.3),
                       "teacher_params": (1.0, 0.2)})


def delta(plain: Law, distilled: Law) -> float:
    """F(Dp) minus its Dp terms: every term that does not depend on Dp."""
    def rest(law: Law) -> float:
        rest = law_of(law.E, {k: t for k, t in law.terms.items() if k != "dp"})
        return float(rest.predict(FIXED))
    return rest(plain) - rest(distilled)


def closed_forms(plain: Law, distilled: Law) -> tuple[float, float]:
    (c, a), (c2, a2) = plain.terms["dp"], distilled.terms["dp"]
    assert a2 == pytest.approx(2 * a)
    u_cross = (c - math.sqrt(c * c + 4 * c2 * delta(plain, distilled))) / (2 * c2)
    return (c / (2 * c2)) ** (-1 / a), u_cross ** (-1 / a)


def slope(plain: Law, distilled: Law, dp: float) -> float:
    """dF/d log Dp by central differences (error units per e-fold of images)."""
    h = 1e-5
    f = [float(boundary.advantage(plain, distilled, FIXED, dp * math.exp(s))) for s in (-h, h)]
    return (f[1] - f[0]) / (2 * h)


def fitted(law: Law, ensemble=None) -> Fit:
    return Fit(law, 0.0, 100, tuple(law.terms), None, ensemble)


def test_d_star_and_d_cross_match_the_closed_forms():
    star, cross = closed_forms(PLAIN, DISTILLED)
    assert boundary.d_star(PLAIN, DISTILLED, FIXED) == pytest.approx(star, rel=1e-12)
    assert boundary.d_cross(PLAIN, DISTILLED, FIXED, (10.0, 1e8)) == pytest.approx(cross, rel=1e-9)
    assert 5e3 < star < 6e3 and 6e4 < cross < 8e4  # the regime the comment above promises


@pytest.mark.parametrize("a, a2, c, c2", [(0.3, 0.5, 3.0, 20.0), (0.2, 0.9, 1.0, 400.0),
                                          (0.5, 0.6, 10.0, 18.0)])
def test_d_star_zeroes_the_derivative_and_eq14_as_printed_does_not(a, a2, c, c2):
    plain = law_of(0.1, {"dp": (c, a)})
    distilled = law_of(0.1, {"dp": (c2, a2)})
    lam, lam2 = 1 / c, 1 / c2  # the paper's form: coef = 1 / lambda
    derived = ((a2 / lam2) / (a / lam)) ** (1 / (a2 - a))
    printed = ((a / lam) / (a2 / lam2)) ** (1 / (a2 - a))  # eq. 14, ratio upside down
    star = boundary.d_star(plain, distilled)
    assert star == pytest.approx(derived, rel=1e-12)
    scale = abs(slope(plain, distilled, star / 10))  # slope a decade away, for a relative zero
    assert abs(slope(plain, distilled, star)) < 1e-6 * scale
    assert abs(slope(plain, distilled, printed)) > 1e-3 * scale
    peak, left, right = (float(boundary.advantage(plain, distilled, {}, dp))
                         for dp in (star, star / 1.05, star * 1.05))
    assert peak > left and peak > right  # a peak, not a dip


@pytest.mark.parametrize("plain, distilled, why", [
    # equal Dp exponents: F' = -a (c - c') Dp^(-a-1) keeps one sign
    (law_of(0.1, {"dp": (3.0, 0.4)}), law_of(0.1, {"dp": (5.0, 0.4)}), "monotone in Dp"),
    (law_of(0.1, {"dp": (3.0, 0.6)}), law_of(0.1, {"dp": (5.0, 0.3)}), "a minimum"),
    (law_of(0.1, {"df": (3.0, 0.4)}), law_of(0.1, {"dp": (5.0, 0.4)}), "no Dp term"),
])
def test_no_interior_peak_is_said(plain, distilled, why):
    assert boundary.d_star(plain, distilled) is None
    assert why in boundary._d_star(plain, distilled)[1]


def test_d_cross_respects_its_range_and_sign():
    _, cross = closed_forms(PLAIN, DISTILLED)
    assert boundary.d_cross(PLAIN, DISTILLED, FIXED, (10.0, cross / 2)) is None
    # swapped roles: F is the negative, so it turns - to + there, never + to -
    assert boundary.d_cross(DISTILLED, PLAIN, FIXED, (cross / 10, cross * 10)) is None


def test_intervals_come_from_paired_members():
    rng = np.random.default_rng(0)
    members = [(law_of(PLAIN.E, PLAIN.terms | {"dp": (3.0 * math.exp(0.05 * z), 0.3)}),
                DISTILLED) for z in rng.standard_normal(60)]
    members += [(law_of(0.5, PLAIN.terms), DISTILLED)] * 15  # plain far worse: F > 0, no crossing
    plain = fitted(PLAIN, [m[0] for m in members])
    distilled = fitted(DISTILLED, [m[1] for m in members])
    out = boundary.slice_boundary(plain, distilled, FIXED, np.geomspace(1e3, 1e6, 7))
    lo, hi = out["d_cross_ci"]
    assert lo < out["d_cross"] < hi
    assert out["no_cross_fraction"] == pytest.approx(15 / 75)
    assert out["d_star_ci"][0] < out["d_star"] < out["d_star_ci"][1]
    # the 15 that do not cross still favour distilling at the top of the range: their crossing
    # lies above it, so the interval is open above (20 % of the members > 2.5 %)
    assert out["no_cross_above"] == pytest.approx(15 / 75) and out["no_cross_below"] == 0
    assert hi == math.inf


@pytest.mark.parametrize("extra, side", [(1, None), (3, "below"), (3, "above")])
def test_members_that_do_not_cross_open_the_interval_on_their_side(extra, side):
    """A hand-made ensemble: 97 members crossing near the point fit, and EXTRA that do not cross
    at all: distilling never wins (below: F <= 0 everywhere) or always wins (above). More than
    2.5 % of the 100 on one side opens the interval there; one member (1 %) does not."""
    rng = np.random.default_rng(3)
    crossing = [law_of(PLAIN.E, PLAIN.terms | {"dp": (3.0 * math.exp(0.05 * z), 0.3)})
                for z in rng.standard_normal(100 - extra)]
    odd = law_of(0.01, PLAIN.terms) if side == "below" else law_of(0.5, PLAIN.terms)
    plain = fitted(PLAIN, crossing + [odd] * extra)
    out = boundary.slice_boundary(plain, fitted(DISTILLED, [DISTILLED] * 100), FIXED,
                                  np.geomspace(1e3, 1e6, 7))
    lo, hi = out["d_cross_ci"]
    assert (lo == 0) is (side == "below") and (hi == math.inf) is (side == "above")
    assert 0 <= lo < out["d_cross"] < hi
    shares = (out["no_cross_below"], out["no_cross_above"])
    assert shares == ((extra / 100, 0.0) if side == "below" else (0.0, extra / 100))
    if side is None:   # within one tail: the ends are the ordinary percentiles of all 100
        values = boundary.crossings(plain.ensemble, [DISTILLED] * 100, FIXED, out["dp_range"])
        want = np.percentile(np.where(np.isnan(values), np.inf, values), (2.5, 97.5))
        assert (lo, hi) == pytest.approx(tuple(want), rel=1e-12)


# ---- statuses, through boundaries(rows, fits) ----------------------------------------------

def as_dict(law: Law) -> dict:
    """The simulator's form of a law."""
    return {"E": law.E, "terms": {k: {"coef": c, "exponent": e} for k, (c, e) in law.terms.items()}}


def wrap(v):
    """A law as a Fit without an ensemble; a reason string stays a reason."""
    return fitted(v) if isinstance(v, Law) else v


def grid_rows(plain: Law, distilled: Law, dps, noise=0.0, seeds=(0, 1), rng=None) -> list[dict]:
    """Rows as the grid writes them (ok only), errors from the known laws via the simulator's own
    law_value: one student (4 heads), teachers [2], one Df."""
    rng = rng or np.random.default_rng(0)
    rows = []
    for dp in dps:
        for seed in seeds:
            x = {"dp": dp, "params": STUDENT_PARAMS, "df": DF, "teacher_params": TEACHER_PARAMS}
            base = {"downstream": "digits", "heads": 4, "params": STUDENT_PARAMS, "dp": int(dp),
                    "df": int(DF), "seed": seed, "status": "ok", "loss": 1.0}
            rows.append(base | {"stage": "finetune", "teacher_heads": [], "teacher_params": None,
                                "error": law_value(as_dict(plain), x)
                                * math.exp(noise * rng.standard_normal())})
            rows.append(base | {"stage": "distill", "teacher_heads": [2],
                                "teacher_params": TEACHER_PARAMS,
                                "error": law_value(as_dict(distilled), x)
                                * math.exp(noise * rng.standard_normal())})
    return rows


WIDE = np.geomspace(1e3, 1e6, 7)
LOW = np.geomspace(1e2, 1e4, 5)
WORSE = law_of(0.9, DISTILLED.terms)  # distillation never helps
# status key -> (rows, fits for "digits"); each must produce exactly that status.
SCENARIOS = {
    "ok": (grid_rows(PLAIN, DISTILLED, WIDE), (PLAIN, DISTILLED)),
    "outside": (grid_rows(PLAIN, DISTILLED, LOW), (PLAIN, DISTILLED)),
    "none": (grid_rows(PLAIN, WORSE, WIDE), (PLAIN, WORSE)),
    "few_dp": (grid_rows(PLAIN, DISTILLED, [1e4]), (PLAIN, DISTILLED)),
    "no_plain": ([r for r in grid_rows(PLAIN, DISTILLED, WIDE) if r["stage"] == "distill"],
                 (PLAIN, DISTILLED)),
    "unfitted": (grid_rows(PLAIN, DISTILLED, WIDE), (PLAIN, "too few rows: 3 for 9 parameters")),
}


@pytest.mark.parametrize("key", sorted(boundary.STATUS))
def test_every_status_is_reachable(key):
    assert set(SCENARIOS) == set(boundary.STATUS)
    rows, (plain, distilled) = SCENARIOS[key]
    [out] = boundary.boundaries(rows, {"digits": {"error": wrap(plain),
                                                  "distilled_error": wrap(distilled)}})
    prefix = boundary.STATUS[key].split("{")[0]
    assert out.status.startswith(prefix), (key, out.status)
    assert out.in_range is (key == "ok")
    assert (out.student_heads, out.teacher_heads, out.df) == (4, (2,), 500)
    if key in ("ok", "outside"):
        assert out.d_cross == pytest.approx(closed_forms(PLAIN, DISTILLED)[1], rel=1e-9)
    if key in ("ok", "unfitted"):   # the measurements need no law: the same rows, the same answer
        truth = closed_forms(PLAIN, DISTILLED)[1]
        assert truth / 10 ** 0.5 < out.model_free_cross < truth * 10 ** 0.5
        assert out.measured_ends["largest"]["mean"] < 0


def test_model_free_cross_of_exact_rows_brackets_the_truth():
    rows = grid_rows(PLAIN, DISTILLED, WIDE)
    [out] = boundary.boundaries(rows, {"digits": {"error": fitted(PLAIN),
                                                  "distilled_error": fitted(DISTILLED)}})
    truth = closed_forms(PLAIN, DISTILLED)[1]
    step = WIDE[1] / WIDE[0]  # measured Dp are half a decade apart
    assert truth / step < out.model_free_cross < truth * step


def test_fitted_laws_locate_the_boundary_with_intervals():
    """Noisy rows -> fit_law on both stages -> boundaries: the truth lies inside the intervals."""
    rng = np.random.default_rng(1)
    dps = np.round(np.geomspace(1e3, 1e6, 10))
    rows = grid_rows(PLAIN, DISTILLED, dps, noise=0.01, seeds=range(3), rng=rng)
    fits = {}
    for name, stage, inputs in (("error", "finetune", ("dp",)),
                                ("distilled_error", "distill", ("dp",))):
        mine = [r for r in rows if r["stage"] == stage]
        X = {k: np.array([r[k] for r in mine], dtype=float) for k in inputs}
        fits[name] = fit_law(X, np.array([r["error"] for r in mine]), bootstrap=40, seed=2)
    [out] = boundary.boundaries(rows, {"digits": fits})
    star, cross = closed_forms(PLAIN, DISTILLED)
    assert out.status == "ok"
    assert out.cross_interval()[0] < cross < out.cross_interval()[1]
    assert out.d_star_ci[0] < star < out.d_star_ci[1]
    assert out.d_cross == pytest.approx(cross, rel=0.3)


def test_every_slice_writes_the_same_keys():
    """boundary.json's entries have one set of keys whatever the status (notes aside)."""
    keys = set()
    for rows, (plain, distilled) in SCENARIOS.values():
        [out] = boundary.boundaries(rows, {"digits": {"error": wrap(plain),
                                                      "distilled_error": wrap(distilled)}})
        keys.add(frozenset(k for k in out.to_json() if not k.endswith("_note")))
    assert len(keys) == 1 and {"status", "downstream", "d_cross_ci", "no_cross_above"} <= keys.pop()


def test_a_slice_round_trips_through_its_json():
    """boundary.json's entry is the Slice: every status, an open interval with its shares and
    notes, and the paper forms' boundary beside a selected form's read back equal."""
    found = [boundary.boundaries(rows, {"digits": {"error": wrap(p), "distilled_error": wrap(d)}})
             for rows, (p, d) in SCENARIOS.values()]
    rng = np.random.default_rng(0)
    members = [law_of(PLAIN.E, PLAIN.terms | {"dp": (3.0 * math.exp(0.05 * z), 0.3)})
               for z in rng.standard_normal(20)] + [law_of(0.5, PLAIN.terms)] * 5
    laws = {"error": fitted(PLAIN, members), "distilled_error": fitted(DISTILLED, [DISTILLED] * 25)}
    [mine] = boundary.boundaries(SCENARIOS["ok"][0], {"digits": laws},
                                 paper={"digits": {k: fitted(v.law, v.ensemble)
                                                   for k, v in laws.items()}})
    assert mine.cross_interval()[1] == math.inf and mine.paper is not None
    for s in [mine] + [one for many in found for one in many]:
        text = json.dumps(s.to_json(), allow_nan=False)     # JSON proper: no Infinity, no NaN
        assert Slice.from_json(json.loads(text)) == s


def test_an_estimate_is_never_outside_its_own_interval():
    """A point fit atypical of its resamples: members whose distilled Dp coefficient is higher
    cross earlier, every one of them below the point fit's crossing. The interval is widened to
    hold the estimate, and a note says so."""
    members = [law_of(DISTILLED.E, DISTILLED.terms | {"dp": (c, 0.6)}) for c in (21.0, 22.0, 23.0)]
    out = boundary.slice_boundary(fitted(PLAIN, [PLAIN] * 3), fitted(DISTILLED, members), FIXED,
                                  [1e3, 1e4, 1e5])
    crosses = [boundary.d_cross(PLAIN, m, FIXED, out["dp_range"]) for m in members]
    assert max(crosses) < out["d_cross"]                      # every member below the estimate
    lo, hi = out["d_cross_ci"]
    assert lo == pytest.approx(np.percentile(crosses, 2.5)) and hi == out["d_cross"]
    assert "outside the bootstrap members' 95 % interval" in out["d_cross_note"]
    inside = boundary.slice_boundary(fitted(PLAIN, [PLAIN] * 3),
                                     fitted(DISTILLED, [DISTILLED] * 3), FIXED, [1e3, 1e4, 1e5])
    assert "d_cross_note" not in inside                       # no note where none is needed


def test_every_slice_carries_its_measured_ends():
    """The paired differences behind the check are those of the rows, seed by seed."""
    rows = grid_rows(PLAIN, DISTILLED, WIDE, noise=0.01, seeds=range(3))
    [out] = boundary.boundaries(rows, {"digits": {"error": fitted(PLAIN),
                                                  "distilled_error": fitted(DISTILLED)}})
    plain = {(r["dp"], r["seed"]): r["error"] for r in rows if r["stage"] == "finetune"}
    want = [plain[(r["dp"], r["seed"])] - r["error"] for r in rows
            if r["stage"] == "distill" and r["dp"] == int(WIDE[0])]
    small = out.measured_ends["smallest"]
    assert small["dp"] == int(WIDE[0]) and small["seeds"] == 3
    assert small["mean"] == pytest.approx(np.mean(want))
    assert small["se"] == pytest.approx(np.std(want, ddof=1) / math.sqrt(3))
    # F = -0.019 at 1e3 images, +0.028 at 3e3, -0.037 at 1e6 (seed noise ~0.007 per pair): from
    # 1e3 distilling never helps at the smallest Dp; from 3e3 it helps there and hurts at the end
    assert out.theorem1 is False
    rows = grid_rows(PLAIN, DISTILLED, np.geomspace(3e3, 1e6, 6), noise=0.01, seeds=range(3))
    [out] = boundary.boundaries(rows, {"digits": {"error": fitted(PLAIN),
                                                  "distilled_error": fitted(DISTILLED)}})
    assert out.theorem1 is True
