"""Loading: a registered dataset's splits as uint8 tensors at the model's size, mapped from the
node's split cache, and the nested per-class subsets a trial trains on.

`load_dataset(name, ...)` returns train and test splits as uint8 (N, C, H, W) tensors resized to
the model's image_size. They are decoded once per node into the split cache (raysweep.data.cache)
and mapped from there, copy-on-write, so every trial of every worker on the node shares one copy
in the page cache (docs/design.md §4); the mapping is memoised per process. A trial gathers its
batches from them by index (train/batches.py): a subset is an index, never a copy. `subset_indices` draws the Dp / Df subsets: per class, uniform,
seeded and nested (the 5 % subset is inside the 10 % subset for the same seed).

What a dataset is (its classes, sizes, params, what a root must hold) is the registry,
raysweep.data, which imports no torch; this module and the readers it calls (its entries'
`reader`) do.
"""

from __future__ import annotations

import functools
import importlib
import json
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from raysweep.data import (
    DATASETS,
    cache,
    cache_dir,
    cached_bytes,
    fractal,
    hint,
    params_of,
    resolve_amount,
    resolve_root,
)
from raysweep.data.layouts import DataNotFoundError
from raysweep.data.real import Raw, in_memory, resized

RESIZE_CHUNK = 4096            # images resized per call: bounds the float intermediates


@dataclass(frozen=True)
class Split:
    images: torch.Tensor   # uint8, (N, C, H, W), mapped from the split cache (or on `device`)
    labels: torch.Tensor   # int64, (N,), class indices in [0, num_classes)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    flip: bool             # is a horizontal mirror label-preserving? (the loop's default augment)


def reader(name: str) -> Callable[..., Raw]:
    """The function that reads `name`: `reader(root, params, image_size, download, alloc)` returns
    Raw, any size and 1 or 3 channels (load_dataset resizes and converts); a reader that fills
    large arrays takes them from `alloc(tag, shape)` (data/cache.py)."""
    module, function = DATASETS[name].reader.rsplit(".", 1)
    return getattr(importlib.import_module(f"raysweep.data.{module}"), function)


# ---------------------------------------------------------------- the embedded datasets
# (the real ones, read from a data root, are in real.py)

def read_fractal(root, params, image_size, download, alloc=in_memory) -> Raw:
    return fractal.load(image_size, params, cache_dir())


def read_digits(root, params, image_size, download, alloc=in_memory) -> Raw:
    """sklearn's 1,797 8x8 digits, values 0..16 -> 0..255; a fixed stratified 20 % test split
    (360 images, random_state=0), the same for every trial seed so errors compare."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    tr_x, te_x, tr_y, te_y = train_test_split(images, d.target, test_size=0.2, random_state=0,
                                              stratify=d.target)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (tr_x, tr_y, te_x, te_y))


def load_dataset(name: str, *, image_size: int, channels: int = 3, data_root: str | None = None,
                 params: dict | None = None, download: bool = False,
                 device: str | torch.device = "cpu") -> Dataset:
    """Both splits of `name` as uint8 (N, channels, image_size, image_size) tensors, mapped from
    the node's split cache (decoded into it first if no worker has), or copied onto `device` when
    it is not the CPU (small sets only). Memoised on all arguments: callers share the tensors and
    must not modify them in place (a write would stay in the writer's private page)."""
    p = params_of(name, params)
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) \
            or image_size < 1:
        raise ValueError(f"image_size must be a positive integer (pixels), got {image_size!r}")
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels!r}")
    needs_root = bool(DATASETS[name].layout)   # else the root is ignored, and kept out of the memo
    root = str(Path(data_root).expanduser().resolve()) if data_root and needs_root else None
    return _load(name, int(image_size), channels, root, json.dumps(p, sort_keys=True),
                 bool(download), str(torch.device(device)))


@functools.lru_cache(maxsize=4)   # a worker holds its upstream and a downstream or two
def _load(name, image_size, channels, data_root, params_json, download, device) -> Dataset:
    info, params = DATASETS[name], json.loads(params_json)
    root = resolve_root(name, data_root, download) if info.layout else None   # names the layout
    entry = cache.entry_name(name, params, data_root, image_size, channels)
    arrays = cache.open_entry(
        cache_dir(), entry, cached_bytes(name, params, data_root, image_size, channels),
        lambda alloc: _decoded(name, root, params, image_size, channels, download, alloc))
    splits = [Split(torch.from_numpy(arrays[f"{s}_images"]).to(device),
                    torch.from_numpy(arrays[f"{s}_labels"]).to(device)) for s in ("train", "test")]
    return Dataset(name, splits[0], splits[1], info.classes(params), info.flip)


def _decoded(name, root, params, image_size, channels, download, alloc) -> dict:
    """What the split cache holds of `name`: cache.FILES -> arrays, images from `alloc`."""
    info = DATASETS[name]
    try:
        raw = reader(name)(root, params, image_size, download, alloc)
    except DataNotFoundError as exc:
        raise DataNotFoundError(f"{name}: {exc}; expected {info.layout} under {root}"
                                f"{hint(name)}") from None
    out = {}
    for split, (x, y) in (("train", raw[:2]), ("test", raw[2:])):
        images = _split(name, x, y, info.classes(params), image_size, channels, alloc, split)
        out[f"{split}_images"], out[f"{split}_labels"] = images.numpy(), y.to(torch.int64).numpy()
    return out


# ---------------------------------------------------------------- size and channels

CONVERT = {  # (channels on disk, channels wanted) -> conversion of a uint8 (N, C, H, W) batch
    (1, 1): lambda x: x, (3, 3): lambda x: x,
    (1, 3): lambda x: x.expand(-1, 3, -1, -1),               # gray repeated into R, G, B
    (3, 1): lambda x: _luma(x),
}


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, .299 R + .587 G + .114 B, rounded (torchvision's truncates: up to -1)."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (rgb.float() * weights).sum(1, keepdim=True).round_().to(torch.uint8)


CHANNELS = sorted({want for _, want in CONVERT})


def _split(name, images, labels, classes, image_size, channels, alloc, split) -> torch.Tensor:
    """`images` at image_size px and `channels`: as they are when a reader already decoded them
    so (no copy), else converted chunk by chunk into an array from `alloc`."""
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        raise ValueError(f"{name}: labels span [{int(labels.min())}, {int(labels.max())}], "
                         f"expected [0, {classes})")
    shape = (len(images), channels, image_size, image_size)
    if images.dtype == torch.uint8 and tuple(images.shape) == shape:
        return images
    out = torch.from_numpy(alloc(f"{split}_images", shape))
    convert = CONVERT[(images.shape[1], channels)]
    for start in range(0, len(images), RESIZE_CHUNK):
        out[start:start + RESIZE_CHUNK] = convert(resized(images[start:start + RESIZE_CHUNK],
                                                           image_size))
    return out


# ---------------------------------------------------------------- nested subsets

def subset_indices(labels: torch.Tensor, amount: float, seed: int) -> torch.Tensor:
    """Sorted indices of a per-class uniform, seeded, nested subset of `amount` images.

    One seeded permutation orders each class; a seeded class order breaks ties. Images are taken
    round-robin: the first image of every class (in class order), then the second of every class
    that has one, ... The subset for n images is the first n of that one sequence, so a smaller
    amount is a prefix of a larger one (nested) and per-class counts differ by at most 1 unless
    a class runs out of images."""
    if labels.dim() != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D tensor, got shape {tuple(labels.shape)}")
    n = resolve_amount(amount, len(labels))
    g = torch.Generator().manual_seed(int(seed))
    _, cls = torch.unique(labels.cpu(), return_inverse=True)
    perm = torch.randperm(len(cls), generator=g)
    class_rank = torch.randperm(int(cls.max()) + 1, generator=g)
    by_class = perm[torch.sort(cls[perm], stable=True).indices]   # grouped by class, perm order
    sorted_cls = cls[by_class]
    starts = torch.searchsorted(sorted_cls, sorted_cls, right=False)
    within = torch.arange(len(cls)) - starts                       # rank inside its class
    key = within * len(class_rank) + class_rank[sorted_cls]
    chosen = by_class[torch.argsort(key)[:n]]
    return torch.sort(chosen).values.to(labels.device)
