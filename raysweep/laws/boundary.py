"""The distillation boundary of the paper's sec. 4, per slice (downstream, student, teachers, Df).

F(Dp) = E_plain(Dp) - E_distilled(Dp), both fitted laws (the selected forms, laws/candidates.py)
evaluated at the slice's student size, Df and mean teacher size. Positive F: distillation gives the
lower error. Both points are found numerically from the forms themselves, so a form with a Dp x Df
or size x data term gives each slice its own:
- D*p, where F peaks: the zero of dF/d log Dp (the forms' own derivatives) turning + to -. For the
  paper's forms it equals the closed form D*p = (alpha' c'_p / (alpha c_p))^(1/(alpha' - alpha));
  the printed eq. 14 has the ratio upside down (docs/boundary.md has the derivation).
- D**p, the root of F where it turns from + (distillation wins) to - (plain wins).
Both are bracketed on a log-spaced scan of a plausible range (measured range widened by
DP_RANGE_FACTOR each side) and refined by bisection in log Dp, every bootstrap member at once.
- intervals: both over the paired bootstrap ensembles (member i of one law with member i of the
  other), percentile 95 %. D**p's counts a member that does not cross as above or below the
  plausible range, so it is open on a side where > 2.5 % of members sit; CROSS_INTERVAL names
  the rule (laws/intervals.py: the percentile, BCa, or the standard interval on the log scale;
  BENCHMARKS.md, "Law forms (issue 35)", has their coverage on known truths).
Each slice is a `Slice` (laws/slices.py), whose to_json is boundary.json's entry.
- beside them, what the seed replicates say without a law (laws/measured.py): the model-free
  crossing with its interval, and Theorem 1's pattern at the two ends of the measured Dp; and,
  where a sweep's candidates replaced a paper form, the paper forms' own D*p and D**p ("paper").

Status vocabulary (what a reader of boundary.json sees; `STATUS` below):
  "ok"                                  D**p found inside the measured Dp range
  "no crossing in measured range (laws cross at N outside)"   found only outside it
  "no crossing"                         F does not turn + to - in the plausible range
  "too few Dp values (N)"               < 2 distinct Dp measured both ways (same seed) in the slice
  "no plain rows"                       the student was never fine-tuned plainly at this Df
  "law not fitted: <law>: <why>"         a law the slice needs has no fit
Left out: slices over teacher sets (each teacher set is its own slice, as in the paper's Fig. 6).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from raysweep.laws.fitting import JACKKNIFE_GROUPS, percentile
from raysweep.laws.intervals import (
    bca_interval,
    beyond_range,
    holding,
    normal_log_interval,
    open_percentile,
)
from raysweep.laws.law import Fit, Law
from raysweep.laws.measured import measured_ends, model_free, paired_by_dp
from raysweep.laws.slices import Paper, Slice

DP = "dp"                 # the input the boundary is over (pretraining images)
DP_RANGE_FACTOR = 100.0   # plausible range: [min measured / 100, max measured * 100] images
SCAN_POINTS = 400         # log-spaced Dp values scanned for a sign change before bisection
DSTAR_RANGE = (1.0, 1e12)  # images: where a peak of F is looked for when no range is given
# How D**p's interval is read off the members (laws/intervals.py); bench_forms_truths compares
# them. The percentile covered known truths as well as the log-scale interval and better than
# BCa, whose jackknife costs refits: the default.
CROSS_INTERVALS = {"bca": bca_interval,
                   "percentile": lambda crosses, point, jackknife: open_percentile(crosses),
                   "normal_log": normal_log_interval}
CROSS_INTERVAL = "percentile"
JACKKNIFE = {"bca": JACKKNIFE_GROUPS}   # rule -> delete-a-group refits each law's Fit needs
STATUS = {
    "ok": "ok",
    "outside": "no crossing in measured range (laws cross at {dp:.4g} outside)",
    "none": "no crossing",
    "few_dp": "too few Dp values ({n})",
    "no_plain": "no plain rows",
    "unfitted": "law not fitted: {law}: {why}",
}
def d_star(plain: Law, distilled: Law, fixed: Mapping[str, float] | None = None,
           dp_range: tuple[float, float] = DSTAR_RANGE) -> float | None:
    """Dp (images) where F peaks in DP_RANGE, other inputs from FIXED, or None when F has no
    interior maximum there."""
    return _d_star(plain, distilled, fixed, dp_range)[0]


def _d_star(plain: Law, distilled: Law, fixed=None, dp_range=DSTAR_RANGE
            ) -> tuple[float | None, str]:
    """(D*p, why not): the first zero of dF/d log Dp that turns it from + to -, found numerically
    from the forms' own derivatives, so any form (and any slice) has its own."""
    if DP not in plain.form.inputs or DP not in distilled.form.inputs:
        return None, "a law has no Dp term, so F is monotone in Dp"
    star = _roots(lambda u: _slope([plain], [distilled], fixed or {}, u), dp_range)[0]
    if np.isfinite(star):
        return float(star), ""
    minimum = _roots(lambda u: -_slope([plain], [distilled], fixed or {}, u), dp_range)[0]
    if np.isfinite(minimum):
        return None, "F' changes sign - to +: a minimum, not a peak"
    return None, (f"F is monotone in Dp over [{dp_range[0]:.3g}, {dp_range[1]:.3g}] images: "
                  f"no peak")


def _stack(laws: Sequence[Law]) -> dict[str, np.ndarray]:
    """The laws' parameter values as (S, 1) columns: S laws of one form evaluated at once."""
    return {p: np.array([law.values[p] for law in laws], dtype=float)[:, None]
            for p in laws[0].form.params}


def _inputs(fixed: Mapping, u: np.ndarray) -> dict:
    return dict(fixed) | {DP: np.exp(u)}


def _batch_advantage(plain: Sequence[Law], distilled: Sequence[Law], fixed, u) -> np.ndarray:
    """(S, n): F of member s of each list at log Dp U (an (n,) grid or an (S, 1) column)."""
    x = _inputs(fixed, u)
    with np.errstate(all="ignore"):  # wild members: nan, counted as no answer
        return (plain[0].form.evaluate(x, _stack(plain))[0]
                - distilled[0].form.evaluate(x, _stack(distilled))[0])


def _slope(plain: Sequence[Law], distilled: Sequence[Law], fixed, u) -> np.ndarray:
    """(S, n): dF / d log Dp = Dp (dE_plain/dDp - dE_distilled/dDp)."""
    x = _inputs(fixed, u)
    grads = [laws[0].form.evaluate(x, _stack(laws), (DP,))[1].get(DP, 0.0)
             for laws in (plain, distilled)]
    with np.errstate(all="ignore"):
        return np.exp(u) * (grads[0] - grads[1])


def _roots(g, dp_range, iters: int = 64) -> np.ndarray:
    """(S,): per member, the smallest Dp (images) in DP_RANGE where G (a function of log Dp
    returning (S, n)) turns from + to -, nan where it does not; SCAN_POINTS log-spaced values
    find the bracket, then bisection in log Dp (64 halvings of a 0.03-decade bracket: exact to
    machine precision) runs on every member at once."""
    grid = np.linspace(math.log(dp_range[0]), math.log(dp_range[1]), SCAN_POINTS)
    f = np.atleast_2d(g(grid))
    turns = (f[:, :-1] > 0) & (f[:, 1:] <= 0)
    has = turns.any(axis=1)
    first = np.argmax(turns, axis=1)
    lo, hi = grid[first], grid[first + 1]
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        pos = np.atleast_2d(g(mid[:, None]))[:, 0] > 0 if len(mid) else np.zeros(0, bool)
        lo, hi = np.where(pos, mid, lo), np.where(pos, hi, mid)
    return np.where(has, np.exp(hi), np.nan)


def advantage(plain: Law, distilled: Law, fixed: Mapping[str, float], dp) -> np.ndarray:
    """F(Dp) = E_plain - E_distilled at DP images, other inputs from FIXED (error units)."""
    x = dict(fixed) | {DP: np.asarray(dp, dtype=float)}
    return plain.predict(x) - distilled.predict(x)


def d_cross(plain: Law, distilled: Law, fixed: Mapping[str, float],
            dp_range: tuple[float, float]) -> float | None:
    """Smallest Dp (images) in DP_RANGE where F turns from + to -, or None."""
    root = crossings([plain], [distilled], fixed, dp_range)[0]
    return float(root) if np.isfinite(root) else None


def crossings(plain: Sequence[Law], distilled: Sequence[Law], fixed, dp_range) -> np.ndarray:
    """(S,): D**p of each pair (plain[s], distilled[s]), nan where F does not turn + to -."""
    return _roots(lambda u: _batch_advantage(plain, distilled, fixed, u), dp_range)


def peaks(plain: Sequence[Law], distilled: Sequence[Law], fixed, dp_range) -> np.ndarray:
    """(S,): D*p of each pair, nan where F has no peak in DP_RANGE."""
    if DP not in plain[0].form.inputs or DP not in distilled[0].form.inputs:
        return np.full(len(plain), np.nan)
    return _roots(lambda u: _slope(plain, distilled, fixed, u), dp_range)


def slice_boundary(plain: Fit, distilled: Fit, fixed: Mapping[str, float], measured_dp,
                   dp_range=None) -> dict:
    """D*p and D**p of the fitted laws, with intervals, and a status for one slice: the Slice
    fields they fill (notes as "<field>_note")."""
    measured = np.unique(np.asarray(measured_dp, dtype=float))
    out = {}
    if measured.size < 2:
        return out | {"status": STATUS["few_dp"].format(n=measured.size)}
    lo_meas, hi_meas = float(measured[0]), float(measured[-1])
    dp_range = dp_range or (lo_meas / DP_RANGE_FACTOR, hi_meas * DP_RANGE_FACTOR)
    star, why_no_star = _d_star(plain.law, distilled.law, fixed, dp_range)
    cross = d_cross(plain.law, distilled.law, fixed, dp_range)
    out |= {"d_star": star, "d_cross": cross, "dp_range": tuple(dp_range),
            "in_range": cross is not None and lo_meas <= cross <= hi_meas}
    if why_no_star:
        out["d_star_note"] = why_no_star
    out |= _ensemble_intervals(plain, distilled, fixed, dp_range, star, cross)
    return out | {"status": _status(cross, out["in_range"])}


def _status(cross: float | None, in_range: bool) -> str:
    if cross is None:
        return STATUS["none"]
    return STATUS["ok"] if in_range else STATUS["outside"].format(dp=cross)


def _ensemble_intervals(plain: Fit, distilled: Fit, fixed, dp_range, star, cross) -> dict:
    """95 % intervals over the paired members (member i of one law with member i of the other).
    D*p's over the members with a peak, given only where the point fit has one (an interval
    around "no peak" would read as a peak). D**p's over every member (beyond_range): one that
    does not cross sits above the plausible range or below it, so the interval is open on the
    side where more than 2.5 % of the members sit (open_percentile); the point fit is placed the
    same way where it does not cross. D**p's rule is CROSS_INTERVAL's; BCa's acceleration comes
    from the D**p of each law's jackknife laws paired with the other's point fit
    (_jackknife_crosses)."""
    if not plain.ensemble or not distilled.ensemble:
        return {}
    members = min(len(plain.ensemble), len(distilled.ensemble))   # member i with member i
    pair = plain.ensemble[:members], distilled.ensemble[:members]
    stars = peaks(*pair, fixed, dp_range)
    crosses = beyond_range(crossings(*pair, fixed, dp_range), _top(pair, fixed, dp_range))
    out = {"no_cross_fraction": float(np.mean(~np.isfinite(crosses) | (crosses == 0))),
           "no_cross_below": float(np.mean(crosses == 0)),
           "no_cross_above": float(np.mean(np.isinf(crosses))),
           "no_peak_fraction": float(np.mean(np.isnan(stars)))}
    if star is not None:
        ci = percentile([float(v) for v in stars if not np.isnan(v)])
        out |= holding("d_star", star, ci and tuple(ci))
    point = beyond_range(np.array([np.nan if cross is None else cross]),
                         _top(([plain.law], [distilled.law]), fixed, dp_range))[0]
    if not np.isnan(point):
        read = CROSS_INTERVALS[CROSS_INTERVAL]
        ci = read(crosses, float(point), _jackknife_crosses(plain, distilled, fixed, dp_range))
        out |= holding("d_cross", float(point), ci)
    return out


def jackknife_refits() -> int:
    """The delete-a-group refits each boundary law's Fit needs for CROSS_INTERVAL's rule (0: the
    rule reads none, and a study pays for none)."""
    return JACKKNIFE.get(CROSS_INTERVAL, 0)


def _jackknife_crosses(plain: Fit, distilled: Fit, fixed, dp_range) -> list[np.ndarray] | None:
    """[D**p of each plain jackknife law with the distilled point fit, D**p of the plain point fit
    with each distilled jackknife law] (images, nan where a pair does not cross): one jackknife per
    independent sample of rows; None where a law has no jackknife."""
    if not plain.jackknife or not distilled.jackknife:
        return None
    return [crossings(plain.jackknife, [distilled.law] * len(plain.jackknife), fixed, dp_range),
            crossings([plain.law] * len(distilled.jackknife), distilled.jackknife, fixed,
                      dp_range)]


def _top(pair, fixed, dp_range) -> np.ndarray:
    """(S,): F of each pair at the top of DP_RANGE."""
    return _batch_advantage(*pair, fixed, np.full((len(pair[0]), 1), math.log(dp_range[1])))[:, 0]


# ---- every slice of a results table ----------------------------------------------------------

def ok_rows(rows) -> list[dict]:
    """OK rows of a results table (pyarrow.Table, dict of columns or list of dicts), in trial-id
    order: the bootstrap draws rows by index, so the order the results arrived in (Ray's, or a
    listing's) would otherwise change every interval fitted on them."""
    if hasattr(rows, "to_pylist"):
        rows = rows.to_pylist()
    elif isinstance(rows, Mapping):
        rows = [dict(zip(rows, vals)) for vals in zip(*rows.values())]
    ok = [r for r in rows if r.get("status") == "ok" and r.get("error") is not None]
    return sorted(ok, key=lambda r: str(r.get("trial_id") or ""))


def slice_key(s: dict | Slice) -> tuple:
    """(downstream, student heads, teacher heads, Df): a slice of boundary.json's, or the slice of a
    distilled result row (whose student is its `heads`)."""
    if isinstance(s, Slice):
        return s.key
    student = s["student_heads"] if "student_heads" in s else s["heads"]
    return (s["downstream"], student, tuple(s["teacher_heads"] or ()), s["df"])


def distilled_by_slice(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Slice key -> its distilled rows."""
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["stage"] == "distill":
            out.setdefault(slice_key(r), []).append(r)
    return out


def boundaries(rows, fits: Mapping[str, Mapping[str, Fit | str]], dp_range=None,
               paper: Mapping[str, Mapping[str, Fit | str]] | None = None) -> list[Slice]:
    """One Slice per slice. FITS: downstream -> {"error": Fit or why-not string,
    "distilled_error": ...}; PAPER: the same for the paper's forms, where a candidate was
    selected instead (each slice then also says, in `paper`, where those cross). A thin or
    unfitted slice gets a status, never an exception."""
    ok = ok_rows(rows)
    dp_of = {r["trial_id"]: r["dp"] for r in ok if "trial_id" in r}
    out = []
    found = distilled_by_slice(ok)
    for key, distilled in sorted(found.items(), key=lambda kv: (str(kv[0][0]),) + kv[0][1:]):
        downstream, heads, teachers, df = key
        plain = [r for r in ok if r["stage"] == "finetune" and r["downstream"] == downstream
                 and r["heads"] == heads and r["df"] == df]
        head = {"downstream": downstream, "student_heads": heads, "teacher_heads": teachers,
                "df": df, "student_params": distilled[0]["params"],
                "teacher_params": float(np.mean([r["teacher_params"] for r in distilled])),
                "teacher_dp": reused_teacher_dp(distilled, dp_of)}
        mine = fits.get(downstream, {})
        one = _slice(head, _one_slice(head, plain, distilled, mine, dp_range))
        theirs = (paper or {}).get(downstream, {})
        if any(theirs.get(k) is not mine.get(k) for k in theirs):
            by_paper = _slice(head, _one_slice(head, plain, distilled, theirs, dp_range))
            one = dataclasses.replace(one, paper=Paper.of(by_paper))
        out.append(one)
    return out


def _slice(head: dict, found: dict) -> Slice:
    """A Slice of HEAD and what _one_slice FOUND ("<field>_note" keys become its notes)."""
    notes = {k.removesuffix("_note"): found.pop(k) for k in list(found) if k.endswith("_note")}
    return Slice(**head, **found, notes=notes)


def reused_teacher_dp(distilled: list[dict], dp_of: Mapping[str, float]) -> float | None:
    """The one Dp the teachers of these distilled rows were pretrained on, when it is not the
    students' own (the sweep's `distill.teacher_dp`); None when teachers share their student's Dp
    or the rows do not say (no config, or teacher trials without a result)."""
    pairs = set()
    for r in distilled:
        config = json.loads(r["config"]) if r.get("config") else {}
        pairs |= {(r["dp"], dp_of.get(t)) for t in config.get("teacher_trials", [])}
    teacher = {t for _, t in pairs}
    if len(teacher) != 1 or None in teacher or all(s == t for s, t in pairs):
        return None
    return teacher.pop()


def _one_slice(head: dict, plain, distilled, laws: Mapping, dp_range) -> dict:
    """The Slice fields of one slice: the model-free ones, and the laws' (slice_boundary)."""
    if not plain:
        return {"status": STATUS["no_plain"]}
    per_dp = paired_by_dp(plain, distilled)
    measured = model_free(per_dp) | measured_ends(per_dp)   # these need no law
    for name in ("error", "distilled_error"):
        fit = laws.get(name, "no fit for this downstream set")
        if not isinstance(fit, Fit):
            return measured | {"status": STATUS["unfitted"].format(law=name, why=fit)}
    return (slice_boundary(laws["error"], laws["distilled_error"], fixed_inputs(head),
                           np.array(list(per_dp), dtype=float), dp_range) | measured)


def fixed_inputs(head: Mapping) -> dict:
    """The law inputs a slice's head (before its Slice exists) holds fixed along Dp; a Slice
    answers Slice.fixed_inputs()."""
    return {"params": head["student_params"], "df": head["df"],
            "teacher_params": head["teacher_params"]}
