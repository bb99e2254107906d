"""What the findings read from fits.json, boundary.json and adaptive.json, in one place, so a
change to those files' keys is adapted here and nowhere else in the findings.

  fits.json      downstream[ds][law] for law in ("error", "distilled_error"), read as
                 LawEntries (laws/entries.py, its one JSON form): status, selected, expression,
                 params, ci, E_left_out, warnings, lack_of_fit {skipped, misfits, p,
                 largest_miss}
  boundary.json  read as Slices (laws/slices.py, its one JSON form): the crossing and its
                 interval through Slice.cross_interval / measured_interval, measured_ends
                 {smallest, largest: dp, mean, se, seeds}, theorem1
  adaptive.json  rounds, trials_run, stopped, budget {unit, amount, spent}

Every reader tolerates a missing key (None, or "cannot tell"): a half-written or older file
gives fewer findings, never an exception.
"""

from __future__ import annotations

import dataclasses
import json
import math

from raysweep.errors import InputError
from raysweep.laws import boundary as bnd
from raysweep.laws.catalogue import SYMBOLS
from raysweep.laws.entries import LawEntry, entry
from raysweep.laws.form import EXPONENT, parse_with_params
from raysweep.laws.measured import SIGNIFICANT_SE
from raysweep.laws.slices import Slice

PLAIN, DISTILLED = "error", "distilled_error"   # the laws the boundary is drawn from
PAPER_FORM = "paper"  # fits.json's name of the paper's additive form
BY_EXPONENT = {s.exponent: s.measures for s in SYMBOLS.values()}   # alpha -> "Dp"


def law(fits: dict | None, ds: str, name: str) -> LawEntry | None:
    """The fits.json entry of law NAME on DS (read as a LawEntry where given as a mapping), or
    None."""
    found = ((fits or {}).get("downstream") or {}).get(ds, {}).get(name)
    return entry(found) if isinstance(found, (LawEntry, dict)) else None


def fitted(found: LawEntry | None) -> bool:
    return found is not None and found.ok


def form(found: LawEntry) -> str:
    """The form the data support: fits.json's `selected` (a candidate with its expression), else
    the paper's additive form, the only one fitted then."""
    name = found.selected or PAPER_FORM
    if name == PAPER_FORM:
        return "the paper's additive form"
    return f"the {name} form" + (f" ({found.expression})" if found.expression else "")


def exponents(found: LawEntry) -> list[tuple[str, float, tuple | None]]:
    """(label, exponent, its 95 % interval or None) of each exponent of the law's form, the
    paper's named by what they measure ("Dp" for alpha, ...), any other by its parameter name;
    [] for an entry without a stored form. The paper's form has x^-exponent, so its exponents
    read as the paper's; a candidate's extra exponent (dp**mu) reads as written."""
    if found.params is None or not found.expression:
        return []
    try:
        form = parse_with_params(found.expression, found.params)
    except InputError:
        return []
    ci = found.ci or {}
    return [(BY_EXPONENT.get(p, p), found.params[p], ci.get(p)) for p in form.params
            if form.roles[p] == EXPONENT and found.params.get(p) is not None]


def flagged(found: LawEntry) -> list[str]:
    """The terms whose exponent the data barely constrain (fits.json's warnings name them)."""
    return [w.split(":")[0] for w in found.warnings or () if "exponent" in w]


def misfit(found: LawEntry) -> tuple[bool, float] | None:
    """(the law misses its grid means beyond the seeds' noise, p), or None when untested."""
    lof = found.lack_of_fit or {}
    if "misfits" not in lof:
        return None
    return bool(lof["misfits"]), lof.get("p")


def largest_miss(found: LawEntry) -> tuple[dict, float, float] | None:
    """({input: value}, miss, se) of the cell a misfitting law misses most (log y - log law, so
    > 0: the rows lie above it), or None where the law is not rejected or the cell is unknown."""
    lof = found.lack_of_fit or {}
    cell = lof.get("largest_miss") or {}
    if not lof.get("misfits") or not cell.get("at") or cell.get("miss") is None:
        return None
    return dict(cell["at"]), float(cell["miss"]), float(cell.get("se") or 0.0)


def slices(boundary: list | None, ds: str) -> list[Slice]:
    """DS's slices, by student size, teacher set and Df (boundary.json's entries read as Slices
    where given as dicts: Slice.from_json)."""
    every = [s if isinstance(s, Slice) else Slice.from_json(s) for s in boundary or []
             if isinstance(s, (Slice, dict))]
    mine = [s for s in every if s.downstream == ds]
    return sorted(mine, key=lambda s: (s.student_heads or 0, s.teacher_heads, s.df or 0))


@dataclasses.dataclass(frozen=True)
class Crossing:
    """Where plain training overtakes distillation, by the laws or by the measurements."""
    value: float
    lo: float | None       # None: no interval (one seed a Dp leaves no spread to draw from);
                           # 0: open below (too many draws sit below the plausible range)
    hi: float | None       # None: no interval, or open above (too many draws do not cross)
    by: str                # "laws" or "measurements"
    open_share: float      # share of draws beyond the open upper end (that do not cross)
    below_share: float = 0.0   # share of draws below the plausible range (never positive)


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _crossing(value, ci, above: float, below: float, by: str) -> Crossing | None:
    if not _positive(value):
        return None
    if ci is None or not (_positive(ci[0]) or ci[0] == 0):
        return Crossing(value, None, None, by, above)
    return Crossing(value, ci[0], ci[1] if _positive(ci[1]) else None, by, above, below)


def law_crossing(s: Slice) -> Crossing | None:
    """D**p where the laws cross inside the measured Dp range (status ok), else None."""
    if s.status != bnd.STATUS["ok"]:
        return None
    return _crossing(s.d_cross, s.cross_interval(), s.no_cross_above or 0.0,
                     s.no_cross_below or 0.0, "laws")


def measured_crossing(s: Slice) -> Crossing | None:
    return _crossing(s.model_free_cross, s.measured_interval(),
                     s.model_free_no_cross_fraction or 0.0, 0.0, "measurements")


def pinned(c: Crossing, s: Slice) -> bool:
    """C's 95 % interval is closed and lies inside the slice's measured Dp (`dp_range`, where
    boundary.json gives it): the data say where the crossing is, not only that there is one."""
    if not c.lo or c.hi is None:
        return False
    if s.dp_range is not None and all(map(_positive, s.dp_range)):
        return s.dp_range[0] <= c.lo and c.hi <= s.dp_range[1]
    return True


def ends(s: Slice) -> tuple[dict, dict] | None:
    """The measured advantage (plain minus distilled error) at the smallest and largest Dp."""
    found = s.measured_ends or {}
    small, large = found.get("smallest"), found.get("largest")
    return (small, large) if small and large else None


def sign(end: dict) -> int | None:
    """+1 distilling helped, -1 it hurt, 0 neither beyond SIGNIFICANT_SE standard errors, None
    when one seed leaves no standard error."""
    se = end.get("se")
    if se is None or end.get("mean") is None:
        return None
    if abs(end["mean"]) <= SIGNIFICANT_SE * se:
        return 0
    return 1 if end["mean"] > 0 else -1


def theorem1(s: Slice) -> bool | None:
    """Theorem 1's sign change seen in the slice's measurements (None: cannot tell)."""
    return s.theorem1


def dataset_sizes(rows: list[dict], size_of) -> dict[str, int]:
    """{"upstream": training images, <downstream name>: training images} from the rows' configs,
    with SIZE_OF(name, params) -> images (data.train_size, given by the command: the report does
    not import the data registry); {} where a config or a size cannot be read. A row's config is
    parsed only while it can name a size not yet known: a few rows, not every row of a study."""
    sizes: dict[str, int] = {}
    if size_of is None:
        return sizes
    for r in rows:
        if "upstream" in sizes and (r.get("downstream") or "upstream") in sizes:
            continue
        try:
            config = json.loads(r.get("config") or "{}")
            for role, spec in (("upstream", config.get("upstream")),
                               (r.get("downstream"), config.get("downstream"))):
                if role and isinstance(spec, dict) and role not in sizes:
                    sizes[role] = int(size_of(spec["name"], spec.get("params") or {}))
        except (ValueError, KeyError, TypeError):
            continue
    return sizes


def adaptive_state(doc: dict | None) -> dict | None:
    """{"rounds", "trials", "spent", "amount", "unit", "stopped"} of adaptive.json, or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("rounds"), list):
        return None
    budget = doc.get("budget") or {}
    return {"rounds": sum(1 for r in doc["rounds"] if (r.get("round") or 0) > 0),
            "trials": doc.get("trials_run"), "spent": budget.get("spent"),
            "amount": budget.get("amount"), "unit": budget.get("unit"),
            "stopped": doc.get("stopped")}
