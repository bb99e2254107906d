"""A boundary slice (laws/boundary.py) as one typed object, with its one JSON form.

`Slice` is what the boundary finds for one (downstream, student, teachers, Df): D*p and D**p of
the fitted laws with their intervals, the model-free crossing and Theorem 1's measured ends
(laws/measured.py), and, where a candidate form replaced a paper form, what the paper forms say
(`Paper`). `to_json` writes boundary.json's entry (and adaptive.json's rounds); `from_json` reads
it back, so the report and the adaptive rounds read attributes, never keys.

An interval is (lo, hi) in images, with lo = 0 where it is open below and hi = inf where it is
open above (`cross_interval`, `measured_interval`); JSON has no infinity, so an open upper end is
written as null. Older boundary.json files (before the D**p interval counted the members that do
not cross) have no "no_cross_above": their interval holds the crossing members only, and the
report read it as open above when more than OPEN_SHARE of the members did not cross; `from_json`
reads them so, and the same sentences come out.

Left out: typing the measured ends ({"smallest", "largest": {dp, mean, se, seeds}}): they stay the
mapping laws/measured.py writes, read through report/reading.py's `ends`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

OPEN_SHARE = 0.025   # one tail of a 95 % interval: more members than this beyond an end of the
                     # plausible Dp range leave the interval open on that side
Interval = tuple[float, float]
INTERVALS = ("dp_range", "d_star_ci", "d_cross_ci", "model_free_cross_ci")   # Slice's


def _interval(ci, open_above: bool = False) -> Interval | None:
    """An interval from JSON: [lo, hi] with null for an open upper end; None for none."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return None
    lo, hi = (float(v) if isinstance(v, (int, float)) else None for v in ci)
    if lo is None:
        return None
    return (lo, math.inf if hi is None or open_above else hi)


def _old_open_above(d: Mapping) -> bool:
    """An entry written before the interval counted the members that do not cross (no
    "no_cross_above") whose report read it as open above: over OPEN_SHARE of them did not."""
    return "no_cross_above" not in d and (d.get("no_cross_fraction") or 0.0) > OPEN_SHARE


def _json_interval(ci: Interval | None) -> list | None:
    return None if ci is None else [ci[0], ci[1] if math.isfinite(ci[1]) else None]


@dataclasses.dataclass(frozen=True)
class Paper:
    """What the paper's forms say of a slice where candidate forms were selected instead."""
    status: str
    d_star: float | None = None
    d_star_ci: Interval | None = None
    d_cross: float | None = None
    d_cross_ci: Interval | None = None
    no_cross_fraction: float | None = None
    no_cross_below: float | None = None
    no_cross_above: float | None = None
    in_range: bool = False

    def cross_interval(self) -> Interval | None:
        """The paper forms' D**p interval, as Slice.cross_interval."""
        return self.d_cross_ci

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"d_star_ci": _json_interval(self.d_star_ci),
                                           "d_cross_ci": _json_interval(self.d_cross_ci)}

    @classmethod
    def from_json(cls, d: Mapping) -> Paper:
        old = _old_open_above(d)
        share = d.get("no_cross_fraction")
        return cls(str(d.get("status", "?")), d.get("d_star"), _interval(d.get("d_star_ci")),
                   d.get("d_cross"), _interval(d.get("d_cross_ci"), old), share,
                   d.get("no_cross_below"), share if old else d.get("no_cross_above"),
                   bool(d.get("in_range")))

    @classmethod
    def of(cls, s: Slice) -> Paper:
        return cls(s.status, s.d_star, s.d_star_ci, s.d_cross, s.d_cross_ci,
                   s.no_cross_fraction, s.no_cross_below, s.no_cross_above, s.in_range)


@dataclasses.dataclass(frozen=True)
class Slice:
    """One slice's boundary. Images for every Dp; shares are fractions of bootstrap members (D*p,
    D**p) or of seed draws (model-free)."""
    downstream: str
    student_heads: int | None = None       # None only in a half-written file
    teacher_heads: tuple[int, ...] = ()
    df: float | None = None
    status: str = "no boundary"
    student_params: float | None = None
    teacher_params: float | None = None    # the mean of the slice's teacher sizes
    teacher_dp: float | None = None        # teachers' Dp where it is not the student's own
    dp_range: Interval | None = None       # the plausible range the roots were looked for in
    d_star: float | None = None            # where F peaks
    d_star_ci: Interval | None = None
    no_peak_fraction: float | None = None
    d_cross: float | None = None           # where F turns + to -: plain overtakes
    d_cross_ci: Interval | None = None     # 0 / inf: open below / above
    no_cross_fraction: float | None = None   # members with no crossing in dp_range ...
    no_cross_below: float | None = None    # ... of which F <= 0 at the top: plain wins throughout
    no_cross_above: float | None = None    # ... of which F > 0 at the top: crossing above
    in_range: bool = False                 # D**p inside the measured Dp
    model_free_cross: float | None = None
    model_free_cross_ci: Interval | None = None
    model_free_no_cross_fraction: float | None = None
    model_free_spread: str | None = None
    measured_ends: dict | None = None      # {"smallest", "largest": {dp, mean, se, seeds}}
    theorem1: bool | None = None
    notes: dict[str, str] = dataclasses.field(default_factory=dict)   # field -> why missing
    paper: Paper | None = None             # the paper forms' boundary, where not selected
    forms: dict[str, str] | None = None    # law -> the selected form's name

    def __post_init__(self):   # one in-memory form whoever built it: intervals as tuples
        for name in INTERVALS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        object.__setattr__(self, "teacher_heads", tuple(self.teacher_heads))

    @property
    def key(self) -> tuple:
        """(downstream, student heads, teacher heads, Df): boundary.slice_key's."""
        return (self.downstream, self.student_heads, self.teacher_heads, self.df)

    def fixed_inputs(self) -> dict:
        """The law inputs the slice holds fixed along Dp."""
        return {"params": self.student_params, "df": self.df,
                "teacher_params": self.teacher_params}

    def cross_interval(self) -> Interval | None:
        """D**p's 95 % interval (lo, hi), lo 0 / hi inf where open; None without an ensemble."""
        return self.d_cross_ci

    def measured_interval(self) -> Interval | None:
        """The model-free crossing's 95 % interval, hi inf where more than OPEN_SHARE of the
        seed draws do not cross; None where the seeds give no draws."""
        ci = self.model_free_cross_ci
        if ci is None or (self.model_free_no_cross_fraction or 0.0) <= OPEN_SHARE:
            return ci
        return (ci[0], math.inf)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        notes = out.pop("notes")
        out |= {"teacher_heads": list(self.teacher_heads),
                "paper": self.paper.to_json() if self.paper else None}
        for name in INTERVALS:
            out[name] = _json_interval(getattr(self, name))
        out |= {f"{k}_note": v for k, v in notes.items()}
        if self.paper is None:
            del out["paper"]
        return out

    @classmethod
    def from_json(cls, d: Mapping) -> Slice:
        """A boundary.json entry (this version's or an older one's) as a Slice; a missing field
        reads as its default (a half-written file gives fewer findings), a missing downstream
        set is a ValueError."""
        if d.get("downstream") is None:
            raise ValueError(f"a boundary slice without a downstream set: expected the keys "
                             f"downstream, student_heads, teacher_heads, df, status; got "
                             f"{sorted(d)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in d.items() if k in fields}
        old = _old_open_above(d)
        kept |= {"teacher_heads": tuple(d.get("teacher_heads") or ()),
                 "status": str(d.get("status", "no boundary")),
                 "dp_range": _interval(d.get("dp_range")),
                 "d_star_ci": _interval(d.get("d_star_ci")),
                 "d_cross_ci": _interval(d.get("d_cross_ci"), old),
                 "model_free_cross_ci": _interval(d.get("model_free_cross_ci")),
                 "notes": {k.removesuffix("_note"): v for k, v in d.items()
                           if k.endswith("_note") and isinstance(v, str)},
                 "paper": Paper.from_json(d["paper"]) if isinstance(d.get("paper"), Mapping)
                 else None}
        if old:   # what the report read: every member that did not cross, open above
            kept["no_cross_above"] = d.get("no_cross_fraction")
        return cls(**kept)
