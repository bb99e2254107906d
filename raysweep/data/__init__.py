"""Datasets as in-memory uint8 tensors, one registry, and nested per-class subsets.

`load_dataset(name, ...)` returns train and test splits as uint8 (N, C, H, W) tensors resized to
the model's image_size once, at load time, and memoised per process, so every trial in a worker
shares one copy (docs/design.md §4). `subset_indices` draws the Dp / Df subsets: per class, uniform,
seeded and nested (the 5 % subset is inside the 10 % subset for the same seed).

Amounts: a float in (0, 1] is a fraction of the training split; an int >= 2 is a number of images;
1 (int or float) is the whole split, as in the sweep files (`dp: [..., 1]`), so a single image
cannot be asked for and a fraction that rounds to one image is refused rather than read back as
"everything". Counts below the number of classes are allowed: the seed picks which classes get one
image (nesting still holds); whether that makes sense is the sweep's call.

The readers of the real datasets' file formats live in raysweep/data/real.py; this module
registers them and is the only one callers use.

Left out: a disk cache of decoded real datasets (only the generated fractal images are cached; real
ones are decoded once per worker process), and download of TinyImageNet / ImageNet (licensed or
hosted without a stable URL; CIFAR downloads through torchvision when asked).
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from raysweep.data import fractal, real
from raysweep.data.real import DataNotFoundError, Raw, resized

RESIZE_CHUNK = 4096            # images resized per call: bounds the float intermediates


@dataclass(frozen=True)
class Split:
    images: torch.Tensor   # uint8, (N, C, H, W), on the dataset's device
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


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry. `load(root, params, image_size, download)` returns Raw, any size and
    1 or 3 channels (load_dataset resizes and converts); `train_images` / `classes` answer from
    params alone; `count(root, params)`, when set, counts the training images under a root;
    `problems(root, params)` lists what of `layout` is missing there, decoding nothing."""
    load: Callable[..., Raw]
    train_images: Callable[[dict], int]
    classes: Callable[[dict], int]
    flip: bool
    layout: str = ""                       # expected files under the data root ("" = no root)
    defaults: dict = field(default_factory=dict)
    count: Callable[[Path, dict], int] | None = None
    downloads: bool = False                # fetched by torchvision when download=True
    problems: Callable[[Path, dict], list[str]] | None = None


def cache_dir() -> Path:
    """Where generated data is kept: $RAYSWEEP_CACHE, else ~/.cache/raysweep."""
    return Path(os.environ.get("RAYSWEEP_CACHE", "~/.cache/raysweep")).expanduser()


# ---------------------------------------------------------------- the embedded datasets
# (the real ones, read from a data root, are in real.py)

def _fractal(root, params, image_size, download) -> Raw:
    return fractal.load(image_size, params, cache_dir())


def _digits(root, params, image_size, download) -> Raw:
    """sklearn's 1,797 8x8 digits, values 0..16 -> 0..255; a fixed stratified 20 % test split
    (360 images, random_state=0), the same for every trial seed so errors compare."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    tr_x, te_x, tr_y, te_y = train_test_split(images, d.target, test_size=0.2, random_state=0,
                                              stratify=d.target)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (tr_x, tr_y, te_x, te_y))


def _const(n: int) -> Callable[[dict], int]:
    return lambda params: n


def _fractal_size(params: dict) -> int:
    p = fractal.resolve_params(params)
    return p["classes"] * p["images_per_class"]


# ---------------------------------------------------------------- the registry

def _registry() -> dict[str, DatasetInfo]:
    from torchvision.datasets import CIFAR10, CIFAR100
    return {
        # Generated; mirrored images are drawn on purpose (fractal.instances), so flips are free.
        "fractal": DatasetInfo(_fractal, _fractal_size,
                               lambda p: fractal.resolve_params(p)["classes"], flip=True,
                               defaults=dict(fractal.DEFAULTS)),
        # A mirrored 2, 3 or 7 is no longer that digit: no flip. 1,797 - 360 test = 1,437 train.
        "digits": DatasetInfo(_digits, _const(1437), _const(10), flip=False),
        "cifar10": DatasetInfo(real.cifar(CIFAR10), _const(50_000), _const(10), flip=True,
                               layout=real.cifar_layout(CIFAR10), downloads=True,
                               problems=real.cifar_problems(CIFAR10)),
        "cifar100": DatasetInfo(real.cifar(CIFAR100), _const(50_000), _const(100), flip=True,
                                layout=real.cifar_layout(CIFAR100), downloads=True,
                                problems=real.cifar_problems(CIFAR100)),
        "tinyimagenet": DatasetInfo(real.tinyimagenet, _const(100_000), _const(200), flip=True,
                                    layout=real.TINYIMAGENET_LAYOUT, count=real.tinyimagenet_count,
                                    problems=real.tinyimagenet_problems),
        # 126,689 = the train images of the usual ImageNet-100 class list (Tian et al. 2020, CMC);
        # with a data root, train_size counts the files instead.
        "imagenet100": DatasetInfo(real.imagenet100, _const(126_689), _const(100), flip=True,
                                   layout=real.IMAGENET100_LAYOUT,
                                   defaults={"class_list": None}, count=real.imagenet100_count,
                                   problems=real.imagenet100_problems),
    }


DATASETS: dict[str, DatasetInfo] = _registry()


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {dataset_names()}")
    return DATASETS[name]


def _params(name: str, params: dict | None) -> dict:
    info = _info(name)
    unknown = sorted(set(params or {}) - set(info.defaults))
    if unknown:
        raise ValueError(f"{name}: unknown params {unknown}; expected some of "
                         f"{sorted(info.defaults) or 'none'}")
    return {**info.defaults, **(params or {})}


def num_classes(name: str, params: dict | None = None) -> int:
    return _info(name).classes(_params(name, params))


def train_size(name: str, params: dict | None = None, data_root: str | None = None) -> int:
    """Training images of `name`, without loading them: from params, or (for datasets that can
    count, i.e. imagenet100) by listing the files under data_root when it is given."""
    info, p = _info(name), _params(name, params)
    if data_root is not None and info.count is not None:
        return info.count(_root(name, data_root), p)
    return info.train_images(p)


def check(name: str, params: dict | None = None, data_root: str | None = None,
          images: int = 0, download: bool = False) -> list[str]:
    """Why `name` would not load `images` training images from `data_root`: one line per problem,
    [] when none. Lists files and counts them; opens no image. With download (CIFAR), a missing
    root or file is what the download fetches, so it is no problem."""
    info, p = _info(name), _params(name, params)
    if not info.layout:
        return []
    try:
        root = _root(name, data_root, download)
    except DataNotFoundError as err:
        return [str(err)]
    if download and info.downloads:
        return []
    problems = [f"{name}: {line}{_hint(name)}" for line in info.problems(root, p)]
    have = info.count(root, p) if info.count and not problems else info.train_images(p)
    if have < images:
        problems.append(f"{name}: {root} holds {have:,} training images; the sweep asks for up "
                        f"to {images:,} (its largest amount)")
    return problems


def load_dataset(name: str, *, image_size: int, channels: int = 3, data_root: str | None = None,
                 params: dict | None = None, download: bool = False,
                 device: str | torch.device = "cpu") -> Dataset:
    """Both splits of `name` as uint8 (N, channels, image_size, image_size) tensors on `device`,
    memoised on all arguments: callers share the tensors and must not modify them in place."""
    p = _params(name, params)
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
    root = _root(name, data_root, download) if info.layout else None   # error names the layout
    try:
        raw = info.load(root, params, image_size, download)
    except DataNotFoundError as exc:
        raise DataNotFoundError(f"{name}: {exc}; expected {info.layout} under {root}"
                                f"{_hint(name)}") from None
    classes = info.classes(params)
    splits = [_split(name, x, y, classes, image_size, channels, device)
              for x, y in (raw[:2], raw[2:])]
    return Dataset(name, splits[0], splits[1], classes, info.flip)


def _root(name: str, data_root: str | None, download: bool = False) -> Path:
    layout = DATASETS[name].layout
    if data_root is None:
        raise DataNotFoundError(f"{name} needs a data root (--data-root / data_root=) holding "
                                f"{layout}{_hint(name)}")
    root = Path(data_root).expanduser()
    if not root.is_dir() and not (download and DATASETS[name].downloads):
        raise DataNotFoundError(f"{name}: data root {root} does not exist; expected {layout} "
                                f"there{_hint(name)}")
    return root


def _hint(name: str) -> str:
    return "; --download / download=True fetches it" if DATASETS[name].downloads else ""


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


def _split(name, images, labels, classes, image_size, channels, device) -> Split:
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        raise ValueError(f"{name}: labels span [{int(labels.min())}, {int(labels.max())}], "
                         f"expected [0, {classes})")
    out = torch.empty(len(images), channels, image_size, image_size, dtype=torch.uint8)
    convert = CONVERT[(images.shape[1], channels)]
    for start in range(0, len(images), RESIZE_CHUNK):
        out[start:start + RESIZE_CHUNK] = convert(resized(images[start:start + RESIZE_CHUNK],
                                                           image_size))
    return Split(out.to(device), labels.to(torch.int64).to(device))


# ---------------------------------------------------------------- amounts and nested subsets

def resolve_amount(amount: float, total: int) -> int:
    """Number of images meant by `amount` of a `total`-image split: a fraction in (0, 1] (1 = all),
    or an int count in [2, total]. 0.05 of 50,000 -> 2,500; 0.33 of 50,000 -> 16,500."""
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or math.isnan(amount):
        raise ValueError(f"amount must be a fraction in (0, 1] or an image count, got {amount!r}")
    if amount == 1:
        return total
    if isinstance(amount, numbers.Integral):
        if not 2 <= amount <= total:
            raise ValueError(f"image count {amount} is outside [2, {total}] (the split has "
                             f"{total} images; 1 means all of them)")
        return int(amount)
    if not 0 < amount <= 1:
        raise ValueError(f"fraction {amount} is outside (0, 1]; write an image count as an "
                         f"integer")
    count = math.floor(amount * total + 0.5)
    if count < 2:
        raise ValueError(f"fraction {amount} of {total} images is {amount * total:.3g} images; "
                         f"expected at least 2")
    return count


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
