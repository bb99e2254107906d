"""The formula-driven dataset: determinism, seeds, the disk cache, shapes and counts, contractive
maps, and -- the point of it -- classes a pixel classifier can tell apart."""

import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid

from raysweep import cli
from raysweep.data import fractal
from raysweep.sweep import spec

SMALL = {"classes": 4, "images_per_class": 12, "test_per_class": 5, "seed": 3}


@pytest.fixture(scope="module")
def learnable():
    """10 classes x 300 train / 60 test images at 16 px: the sizes of the embedded default."""
    params = {"classes": 10, "images_per_class": 300, "test_per_class": 60, "seed": 0}
    return fractal.generate(16, params)


def test_counts_shapes_and_class_major_labels():
    tr_x, tr_y, te_x, te_y = fractal.generate(12, SMALL)
    assert tr_x.shape == (4 * 12, 1, 12, 12) and te_x.shape == (4 * 5, 1, 12, 12)
    assert tr_x.dtype == te_x.dtype == torch.uint8
    assert tr_y.dtype == te_y.dtype == torch.int64
    assert tr_y.tolist() == [c for c in range(4) for _ in range(12)]
    assert te_y.bincount().tolist() == [5] * 4


def test_every_image_shows_a_shape_not_a_blank_or_a_blob(learnable):
    images = torch.cat([learnable[0], learnable[2]]).flatten(1)
    lit = (images > 0).float().mean(1)          # fraction of the 256 pixels that are not black
    assert (images.amax(1) == 255).all()       # each image scaled to its own densest pixel
    assert lit.min() > 0.02 and lit.max() < 0.7, (lit.min(), lit.max())


def test_same_params_give_bit_identical_tensors():
    first, second = fractal.generate(12, SMALL), fractal.generate(12, SMALL)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_different_seeds_give_different_classes():
    a = fractal.generate(12, SMALL)[0]
    b = fractal.generate(12, {**SMALL, "seed": 4})[0]
    assert (a.float() - b.float()).abs().mean() > 10


def test_default_downstream_classes_are_novel_and_its_test_split_holds_5000():
    """The default sweep fine-tunes on fractal classes of another seed: no IFS of pretraining
    reappears there, and 500 test images per class give the 5,000 of issue 14."""
    sweep = spec.load(cli.sweep_path("default"))
    up, down = sweep.upstream.params, sweep.downstream[0].params
    maps_up = fractal.class_systems(up["classes"], up.get("seed", 0))[0].flatten(1)
    maps_down = fractal.class_systems(down["classes"], down["seed"])[0].flatten(1)
    assert torch.cdist(maps_up, maps_down).min() > 0.1    # map entries lie in [-1, 1]
    assert down["classes"] * down["test_per_class"] == 5000


def test_test_split_size_leaves_train_images_alone():
    a = fractal.generate(12, SMALL)
    b = fractal.generate(12, {**SMALL, "test_per_class": 9})
    assert torch.equal(a[0], b[0]) and not torch.equal(a[2], b[2][: len(a[2])])


def test_images_of_a_class_vary():
    train = fractal.generate(12, SMALL)[0].flatten(1).float()
    assert len(torch.unique(train, dim=0)) == len(train)


def test_maps_stay_contractive_under_the_worst_jitter():
    maps, _ = fractal._random_maps(2000, torch.Generator().manual_seed(0))
    linear = maps[..., :4].reshape(-1, 1, 2, 2)
    # The norm is convex, so its maximum over the jitter box is at a corner: all 16 sign patterns.
    signs = torch.tensor([[(k >> b & 1) * 2 - 1 for b in range(4)] for k in range(16)])
    corners = fractal.JITTER * signs.float().reshape(16, 2, 2)
    gains = torch.linalg.matrix_norm(linear + corners, ord=2)
    assert gains.max() < 1, gains.max()


def test_class_systems_pass_the_filling_filter():
    maps, probs = fractal.class_systems(6, seed=1)
    hits = fractal.chaos_game(maps, probs, torch.tensor([1.0, 0, 0, 0, 1]).expand(6, 5),
                              fractal.FILL_CHECK_PX, 4096, torch.Generator().manual_seed(9))
    fill = (hits > 0).flatten(1).float().mean(1)
    assert ((fill > fractal.FILL[0] * 0.7) & (fill < fractal.FILL[1] * 1.3)).all(), fill
    assert torch.allclose(probs.sum(1), torch.ones(6))


@pytest.mark.parametrize("model", [NearestCentroid, lambda: LogisticRegression(max_iter=200)])
def test_classes_are_learnable_from_pixels(learnable, model):
    tr_x, tr_y, te_x, te_y = (t.flatten(1).numpy() / 255 if t.dtype == torch.uint8 else t.numpy()
                              for t in learnable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # NearestCentroid warns on constant edge pixels
        accuracy = model().fit(tr_x, tr_y).score(te_x, te_y)
    assert accuracy > 0.4, accuracy            # chance is 0.1; measured 0.60 / 0.70 at 500/class


def test_cache_hit_returns_identical_tensors_faster(tmp_path):
    params = {**SMALL, "images_per_class": 400}
    start = time.perf_counter()
    made = fractal.load(16, params, tmp_path)
    generate_s = time.perf_counter() - start
    path = fractal.cache_path(tmp_path, 16, params)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    start = time.perf_counter()
    cached = fractal.load(16, params, tmp_path)
    assert time.perf_counter() - start < generate_s / 2
    for a, b in zip(made, cached):
        assert torch.equal(a, b)


def test_cache_key_covers_size_params_and_version(tmp_path, monkeypatch):
    base = fractal.cache_path(tmp_path, 16, SMALL)
    assert base == fractal.cache_path(tmp_path, 16, {**SMALL, "points": None})   # = the default
    others = {fractal.cache_path(tmp_path, 32, SMALL),
              fractal.cache_path(tmp_path, 16, {**SMALL, "seed": 9}),
              fractal.cache_path(tmp_path, 16, {**SMALL, "points": 64})}
    monkeypatch.setattr(fractal, "VERSION", fractal.VERSION + 1)
    others.add(fractal.cache_path(tmp_path, 16, SMALL))
    assert base not in others and len(others) == 4


def test_unreadable_cache_is_regenerated_with_a_warning(tmp_path):
    path = fractal.cache_path(tmp_path, 12, SMALL)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        images = fractal.load(12, SMALL, tmp_path)[0]
    assert torch.equal(images, fractal.generate(12, SMALL)[0])
    assert torch.equal(fractal.load(12, SMALL, tmp_path)[0], images)     # rewritten


def test_points_param_sets_the_density():
    sparse = fractal.generate(16, {**SMALL, "points": 64})[0]
    dense = fractal.generate(16, SMALL)[0]
    assert (sparse > 0).float().mean() < (dense > 0).float().mean()


@pytest.mark.parametrize("params, match", [
    ({"clases": 3}, r"unknown params \['clases'\]"),
    ({"classes": 1}, "classes must be an integer >= 2"),
    ({"images_per_class": 0}, "images_per_class must be an integer >= 1"),
    ({"test_per_class": 2.5}, "test_per_class must be an integer"),
    ({"seed": True}, "seed must be an integer"),
    ({"points": -5}, "points must be an integer >= 1"),
])
def test_bad_params_are_rejected(params, match):
    with pytest.raises(ValueError, match=match):
        fractal.resolve_params(params)


def test_numpy_integers_are_accepted():
    assert fractal.resolve_params({"classes": np.int64(5)})["classes"] == 5
