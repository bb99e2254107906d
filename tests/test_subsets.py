"""Amounts and the nested per-class subsets (raysweep.data.resolve_amount,
raysweep.data.load.subset_indices): what a Dp or Df of the sweep file means in images, and which
images they are."""

import itertools

import numpy as np
import pytest
import torch

from raysweep import data
from raysweep.data import load

PAPER_FRACTIONS = (0.05, 0.10, 0.25, 0.33, 0.50, 0.70, 1.0)   # sec. 3.1
BALANCED = torch.arange(10).repeat(40)[torch.randperm(400, generator=torch.Generator()
                                                      .manual_seed(0))]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_paper_fractions_are_nested(seed):
    subsets = [set(load.subset_indices(BALANCED, f, seed).tolist()) for f in PAPER_FRACTIONS]
    assert all(a < b for a, b in itertools.pairwise(subsets))
    assert [len(s) for s in subsets] == [20, 40, 100, 132, 200, 280, 400]


def test_counts_are_nested_exact_and_class_balanced():
    previous = set()
    for count in range(2, 401, 7):
        idx = load.subset_indices(BALANCED, count, seed=3)
        per_class = BALANCED[idx].bincount(minlength=10)
        assert len(idx) == count and per_class.max() - per_class.min() <= 1
        assert previous <= set(idx.tolist()) and torch.equal(idx, idx.sort().values)
        previous = set(idx.tolist())


def test_unbalanced_classes_share_evenly_until_one_runs_out():
    labels = torch.tensor([0] * 3 + [1] * 50 + [2] * 50)
    per_class = labels[load.subset_indices(labels, 60, seed=0)].bincount().tolist()
    assert per_class[0] == 3 and sorted(per_class[1:]) == [28, 29]


def test_subsets_are_deterministic_and_seed_dependent():
    a, b = (load.subset_indices(BALANCED, 0.25, seed=5) for _ in range(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, load.subset_indices(BALANCED, 0.25, seed=6))


def test_subsets_are_uniform_within_a_class():
    labels = torch.arange(4).repeat(25)                          # 25 images per class
    hits = torch.zeros(100)
    for seed in range(400):
        hits[load.subset_indices(labels, 0.2, seed)] += 1       # 5 of 25 per class: p = 0.2
    assert 50 < hits.min() and hits.max() < 110, (hits.min(), hits.max())    # mean 80


def test_fewer_images_than_classes_spread_over_seeded_classes():
    picked = [tuple(BALANCED[load.subset_indices(BALANCED, 3, s)].sort().values.tolist())
              for s in range(5)]
    assert all(len(set(p)) == 3 for p in picked) and len(set(picked)) > 1


@pytest.mark.parametrize("amount, total, expected", [
    (0.05, 50_000, 2_500), (0.33, 50_000, 16_500), (0.7, 1437, 1006), (1.0, 1437, 1437),
    (1, 1437, 1437), (2, 1437, 2), (1437, 1437, 1437), (np.int64(40), 100, 40),
])
def test_resolve_amount(amount, total, expected):
    assert data.resolve_amount(amount, total) == expected


@pytest.mark.parametrize("amount, match", [
    (0.0, r"fraction 0.0 is outside \(0, 1\]"), (1.5, r"fraction 1.5 is outside"),
    (-0.2, "outside"), (float("nan"), "got nan"), (True, "got True"), ("0.5", "got '0.5'"),
    (401, r"image count 401 is outside \[2, 400\]"), (0, "outside"),
    (0.001, "is 0.4 images; expected at least 2"),
])
def test_bad_amounts_are_rejected(amount, match):
    with pytest.raises(ValueError, match=match):
        data.resolve_amount(amount, 400)
    with pytest.raises(ValueError, match=match):
        load.subset_indices(BALANCED, amount, seed=0)
