"""Where to measure next: a level-set rule on a bootstrap ensemble, spread out and cost-weighted.

For one slice (downstream, student, teacher set, Df) the ensemble gives, at every candidate Dp, a
sample of F(Dp) = E_plain - E_distilled. The boundary D**p is the level set F = 0 where F turns from
+ to -. The straddle score of Bryan et al. 2005 (used for level sets by Gotovos et al. 2013),
1.96 * sd(F) - |mean(F)|, is the Gaussian form of "the 95 % band of F contains zero". With an
ensemble we read the band off the members instead: p(Dp) is the share of the members that cross
above Dp (distillation still wins there), and

    score(Dp) = min(p, 1 - p),   a candidate only where it exceeds TAIL (inside the 95 % band),

largest where the members split evenly, at the median of the ensemble's D**p. Why not straddle
itself: a bootstrap resample that drops the rows at an end of the Dp range gives a member with a
wild exponent, whose F there is huge (or overflows to NaN), so sd(F) peaks at the range's ends and
straddle spends the trials there instead of at the crossing (seen on simulated truths: rounds at the
smallest Dp while D**p sat mid-range). Members that never cross, and NaN values, count for nothing.

We pick the best-scoring candidates greedily, never two closer than `min_gap` decades of Dp in one
slice (spread, not stacked), and divide the score by the square root of the trial's relative cost
(a bigger Dp costs more pretraining): cost weighs the choice without overriding it. Candidates are
continuous in Dp: a log-spaced grid of `n` image counts between the smallest and largest Dp.

Left out: batch-aware acquisition (e.g. fantasised updates); the spacing rule is the cheap stand-in.
Known limit: on a study of many slices this rule needs more trials than refining the grid by
whole Dp rows (BENCHMARKS.md, "The whole study"). D**p's interval comes from parameters all slices
share, which rows pin and pairs at one slice's crossing barely do. adaptive/design.py ranks pairs
by what they tell about those parameters and is the default; this rule stays as `--rule crossing`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TAIL = 0.025  # share of the ensemble outside a 95 % band, each side


@dataclasses.dataclass(frozen=True)
class Candidate:
    slice_key: tuple
    dp: int            # pretraining images
    score: float       # min(p, 1 - p) / sqrt(relative cost)
    p_positive: float  # p: share of the crossing members in which distillation still wins here
    reason: str = "D**p uncertain here"  # why this Dp: the report's table groups by it
    replicate: int = 0  # 0: a new Dp; k: the k-th repeat of a measured Dp, with new seeds
    shape: str = "pair"  # the option it came in (adaptive/design.py): pair, fine-tune, Df row, row


def candidate_dps(dp_min: float, dp_max: float, n: int = 200) -> np.ndarray:
    """Distinct integer image counts, log-spaced over [dp_min, dp_max]."""
    return np.unique(np.round(np.geomspace(dp_min, dp_max, n)).astype(np.int64))


def first_crossings(f_samples: np.ndarray) -> np.ndarray:
    """(members, candidates) -> per member, the index of the first candidate at which F has turned
    from + to - (its D**p lies just below it), or -1 when it never does."""
    turns = (f_samples[:, :-1] > 0) & (f_samples[:, 1:] <= 0)
    return np.where(turns.any(axis=1), turns.argmax(axis=1) + 1, -1)


def winning_share(f_samples: np.ndarray) -> np.ndarray | None:
    """p at each candidate: the share of the members that cross at all whose D**p lies above it
    (distillation still wins there); None when no member crosses."""
    first = first_crossings(f_samples)
    first = first[first >= 0]
    if first.size == 0:
        return None
    return (first[:, None] > np.arange(f_samples.shape[1])[None, :]).mean(axis=0)


def score_slice(slice_key: tuple, f_samples: np.ndarray, dps: np.ndarray,
                cost: np.ndarray) -> list[Candidate]:
    p = winning_share(f_samples)
    if p is None:
        return []
    unsure = np.minimum(p, 1.0 - p)
    s = unsure / np.sqrt(cost / cost.min())
    return [Candidate(slice_key, int(d), float(v), float(q))
            for d, v, q, u in zip(dps, s, p, unsure) if u > TAIL]


def pick(candidates: list[Candidate], k: int, min_gap: float = 0.1) -> list[Candidate]:
    """The k best candidates, no two in one slice closer than `min_gap` decades of Dp."""
    chosen: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: -c.score):
        if len(chosen) == k:
            break
        near = any(o.slice_key == c.slice_key and abs(np.log10(o.dp / c.dp)) < min_gap
                   for o in chosen)
        if not near:
            chosen.append(c)
    return chosen
