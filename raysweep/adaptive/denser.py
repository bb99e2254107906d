"""The plain denser row the design rule can weigh every pick against (design_rule's ROW_TEST, not
the default: BENCHMARKS.md, "Adaptive sampling in compute"), and the test of whether an option's
expected gain is credibly above that row's.

The row: the sweep's whole row (every Df, every size, every teacher set of one downstream set) at
the log-midpoint of the widest gap between the Dp values whose row is complete: the grid, refined
where it is sparsest, as a user adding Dp values to it would (`row_dp`). It reads no law, so it
cannot be misled by one; its pretrainings are shared by every pair of the row.

The test (`credible`): the design rule's drops are first-order around the point fit, and far from
it, or on laws whose floor, coefficient and exponent trade off, they are overconfident. So the
pick's drop per FLOP and the row's are computed again under each of the first MEMBERS bootstrap
members (the same linearisation, at that member's laws and crossings: information.Laws); the pick
is taken only where it beats the row under at least CREDIBLE of them, else the row is. A member
whose laws cross in no chased slice predicts no gain for either, and one whose information is not
finite predicts nothing: both count against the pick.

Left out: members beyond MEMBERS (each costs a root per chased slice and a Jacobian per row), and
rows at Dp values outside the sweep's range (the sampler stays inside it).
"""

from __future__ import annotations

import math

import numpy as np

from raysweep.adaptive import information
from raysweep.laws.catalogue import BOUNDARY_LAWS
from raysweep.laws.law import Fit
from raysweep.laws.slices import Slice
from raysweep.sweep import plan

MEMBERS = 20      # bootstrap members the test reads: the first, in replicate order
CREDIBLE = 0.9    # share of them under which a pick must beat the denser row


def member_laws(fits: dict, rows: list[dict], targets: list[Slice]
                ) -> list[information.Laws | None]:
    """information.Laws of each of the first MEMBERS bootstrap members of FITS (law -> Fit), None
    for a wild one (its information not finite: a resample that left an end of the Dp range
    out); none at all when the fits carry no ensemble."""
    ensembles = [fits[name].ensemble or [] for name in BOUNDARY_LAWS]
    out = []
    for laws in list(zip(*ensembles))[:MEMBERS]:
        member = {name: Fit(law, 0.0, 0, fits[name].inputs, None, None)
                  for name, law in zip(BOUNDARY_LAWS, laws)}
        out.append(_finite(member, rows, targets))
    return out


def _finite(member: dict, rows: list[dict], targets: list[Slice]) -> information.Laws | None:
    with np.errstate(all="ignore"):
        try:
            laws = information.Laws(member, rows, targets)
        except np.linalg.LinAlgError:   # the SVD of a Jacobian with NaN in it
            return None
    finite = all(np.isfinite(a).all() for a in [*laws.inv.values(), *laws.grads.values()])
    return laws if finite else None


def full_rows(sweep, rows: list[dict], downstream: str, taken: set[str]) -> list[int]:
    """The Dp values (images) of ROWS at which every fine-tune and distillation of DOWNSTREAM's
    row is in TAKEN (run or picked)."""
    def of_downstream(t: plan.Trial) -> bool:
        return (t.config.get("downstream") or {}).get("name") == downstream

    dps = sorted({r["dp"] for r in rows if r["downstream"] == downstream})
    return [dp for dp in dps
            if all(t.trial_id in taken for t in plan.plan(sweep, [dp]) if of_downstream(t))]


def row_dp(full: list[int], measured: list[int], repeat_gap: float) -> int | None:
    """The log-midpoint of the widest gap between the Dp values FULL (images), moved onto a
    MEASURED one within REPEAT_GAP decades of it (the row there is completed); None with fewer
    than two."""
    if len(full) < 2:
        return None
    logs = np.log(sorted(full))
    i = int(np.argmax(np.diff(logs)))
    dp = round(math.exp((logs[i] + logs[i + 1]) / 2))
    near = [m for m in measured if abs(math.log10(m / dp)) < repeat_gap]
    return min(near, key=lambda m: abs(math.log(m / dp))) if near else dp


def credible(pick: tuple, row: tuple, members: dict[str, list], per: str) -> bool:
    """PICK beats ROW, each (score, option, new trials, FLOPs), under at least CREDIBLE of the
    bootstrap MEMBERS (downstream -> information.Laws); with no members, by their point scores."""
    mine, rows = members.get(pick[1].downstream, []), members.get(row[1].downstream, [])
    if not mine or not rows:
        return pick[0] > row[0]
    wins = [a is not None and b is not None and _score(a, pick, per) > _score(b, row, per)
            for a, b in zip(mine, rows)]
    return sum(wins) >= CREDIBLE * len(wins)


def _score(laws: information.Laws, option: tuple, per: str) -> float:
    """Drop of the summed Var(log D**p) per FLOP (PER "trial": per trial) under LAWS."""
    _, _, new, price = option
    return laws.drop(laws.jacobians(information.law_rows(new))) / (
        price if per == "FLOP" else len(new))


def add(members: list[information.Laws], new: list[plan.Trial]) -> None:
    """The picked trials NEW join the information of every member."""
    for laws in filter(None, members):
        laws.add(laws.jacobians(information.law_rows(new)))
