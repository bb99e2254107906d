"""Where to measure next: the straddle rule on a bootstrap ensemble, spread out and cost-weighted.

For one slice (downstream, student, teacher set, Df) the ensemble gives, at every candidate Dp, a
sample of F(Dp) = E_plain - E_distilled. The boundary D**p is the level set F = 0, and the straddle
score of Bryan et al. 2005 (used for level sets by Gotovos et al. 2013),

    straddle(Dp) = 1.96 * sd(F) - |mean(F)|,

is positive exactly where the ensemble's 95 % band contains zero: where the sign of F, and so the
side of the boundary, is still uncertain. We pick the best-scoring candidates greedily, never two
closer than `min_gap` decades of Dp in one slice (spread, not stacked), and divide the score by the
square root of the trial's relative cost (a bigger Dp costs more pretraining): cost weighs the choice
without overriding it. Candidates are continuous in Dp: a log-spaced grid of `n` image counts
between the smallest and the largest Dp available.

Left out: batch-aware acquisition (e.g. fantasised updates); the spacing rule is the cheap stand-in.
"""

from __future__ import annotations

import dataclasses

import numpy as np

Z95 = 1.96


@dataclasses.dataclass(frozen=True)
class Candidate:
    slice_key: tuple
    dp: int            # pretraining images
    score: float       # straddle / sqrt(relative cost); > 0 inside the uncertain band
    p_positive: float  # share of the ensemble in which distillation still wins at this Dp


def candidate_dps(dp_min: float, dp_max: float, n: int = 200) -> np.ndarray:
    """Distinct integer image counts, log-spaced over [dp_min, dp_max]."""
    return np.unique(np.round(np.geomspace(dp_min, dp_max, n)).astype(np.int64))


def straddle(f_samples: np.ndarray) -> np.ndarray:
    """f_samples: (members, candidates) -> the straddle score per candidate."""
    return Z95 * f_samples.std(axis=0) - np.abs(f_samples.mean(axis=0))


def score_slice(slice_key: tuple, f_samples: np.ndarray, dps: np.ndarray,
                cost: np.ndarray) -> list[Candidate]:
    s = straddle(f_samples) / np.sqrt(cost / cost.min())
    p = (f_samples > 0).mean(axis=0)
    return [Candidate(slice_key, int(d), float(v), float(q))
            for d, v, q in zip(dps, s, p) if v > 0]


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


def relative_cost(dps: np.ndarray, pretrain_images_per_dp: float, finetune_images: float
                  ) -> np.ndarray:
    """Images a pair of trials at each Dp pushes through a model: the pretraining (epochs x Dp,
    for the student; teachers' pretraining is shared and often reused) plus the fine-tunings."""
    return pretrain_images_per_dp * dps + finetune_images
