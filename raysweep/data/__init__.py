"""The dataset registry: what each dataset is, answered without loading it -- its classes, its
training images, its params, what a data root must hold -- and the amounts' arithmetic.

Loading (splits as tensors at the model's size, nested subsets) is raysweep.data.load; an entry
names the function that reads its files (`reader`), imported only when a trial loads the dataset.
This module imports neither torch nor torchvision: sweeps are planned and checked, and Tune workers
receive the planned trials, in processes that may never load an image, and importing them costs a
process seconds of CPU (BENCHMARKS.md, "Worker imports").

Amounts: a float in (0, 1] is a fraction of the training split; an int >= 2 is a number of images;
1 (int or float) is the whole split, as in the sweep files (`dp: [..., 1]`), so a single image
cannot be asked for and a fraction that rounds to one image is refused rather than read back as
"everything". Counts below the number of classes are allowed: the seed picks which classes get one
image (nesting still holds); whether that makes sense is the sweep's call.

Decoded splits are kept once per node in a memory-mapped cache (raysweep.data.cache); `cached_bytes`
sizes an entry before anything is decoded.

Left out: download of TinyImageNet / ImageNet (licensed or
hosted without a stable URL; CIFAR downloads through torchvision when asked).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from raysweep.data import fractal_params, layouts
from raysweep.data.layouts import DataNotFoundError


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry. `reader` names the function that reads it, as "module.function" under
    raysweep.data (raysweep.data.load.reader resolves it); `train_images` / `classes` answer from
    params alone; `count(root, params)`, when set, counts the training images under a root;
    `problems(root, params)` lists what of `layout` is missing there, decoding nothing;
    `test_images` is the test split's published size (the split cache's bytes are planned from
    it before any file is read)."""
    reader: str
    train_images: Callable[[dict], int]
    classes: Callable[[dict], int]
    flip: bool
    layout: str = ""                       # expected files under the data root ("" = no root)
    defaults: dict = field(default_factory=dict)
    count: Callable[[Path, dict], int] | None = None
    downloads: bool = False                # fetched by torchvision when download=True
    problems: Callable[[Path, dict], list[str]] | None = None
    test_images: Callable[[dict], int] = lambda params: 0   # nominal: sizes the split cache


def cache_dir() -> Path:
    """Where generated data is kept: $RAYSWEEP_CACHE, else ~/.cache/raysweep."""
    return Path(os.environ.get("RAYSWEEP_CACHE", "~/.cache/raysweep")).expanduser()


# ---------------------------------------------------------------- the registry
# (the readers: load.py for the embedded datasets, real.py for those read from a data root)

def _const(n: int) -> Callable[[dict], int]:
    return lambda params: n


def _fractal_size(params: dict) -> int:
    p = fractal_params.resolve_params(params)
    return p["classes"] * p["images_per_class"]


def _fractal_test_size(params: dict) -> int:
    p = fractal_params.resolve_params(params)
    return p["classes"] * p["test_per_class"]


def _registry() -> dict[str, DatasetInfo]:
    return {
        # Generated; mirrored images are drawn on purpose (fractal.instances), so flips are free.
        "fractal": DatasetInfo("load.read_fractal", _fractal_size,
                               lambda p: fractal_params.resolve_params(p)["classes"], flip=True,
                               defaults=dict(fractal_params.DEFAULTS),
                               test_images=_fractal_test_size),
        # A mirrored 2, 3 or 7 is no longer that digit: no flip. 1,797 - 360 test = 1,437 train.
        "digits": DatasetInfo("load.read_digits", _const(1437), _const(10), flip=False,
                              test_images=_const(360)),
        "cifar10": DatasetInfo("real.cifar10", _const(50_000), _const(10), flip=True,
                               layout=layouts.cifar_layout("cifar10"), downloads=True,
                               problems=layouts.cifar_problems("cifar10"),
                               test_images=_const(10_000)),
        "cifar100": DatasetInfo("real.cifar100", _const(50_000), _const(100), flip=True,
                                layout=layouts.cifar_layout("cifar100"), downloads=True,
                                problems=layouts.cifar_problems("cifar100"),
                                test_images=_const(10_000)),
        "tinyimagenet": DatasetInfo("real.tinyimagenet", _const(100_000), _const(200), flip=True,
                                    layout=layouts.TINYIMAGENET_LAYOUT,
                                    count=layouts.tinyimagenet_count,
                                    problems=layouts.tinyimagenet_problems,
                                    test_images=_const(10_000)),
        # 126,689 = the train images of the usual ImageNet-100 class list (Tian et al. 2020, CMC);
        # with a data root, train_size counts the files instead.
        "imagenet100": DatasetInfo("real.imagenet100", _const(126_689), _const(100), flip=True,
                                   layout=layouts.IMAGENET100_LAYOUT,
                                   defaults={"class_list": None}, count=layouts.imagenet100_count,
                                   problems=layouts.imagenet100_problems,
                                   test_images=_const(5_000)),   # 50 val images per class
    }


DATASETS: dict[str, DatasetInfo] = _registry()


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {dataset_names()}")
    return DATASETS[name]


def params_of(name: str, params: dict | None) -> dict:
    """The entry's defaults updated by `params`; an unknown key is a ValueError naming the known."""
    info = _info(name)
    unknown = sorted(set(params or {}) - set(info.defaults))
    if unknown:
        raise ValueError(f"{name}: unknown params {unknown}; expected some of "
                         f"{sorted(info.defaults) or 'none'}")
    return {**info.defaults, **(params or {})}


def num_classes(name: str, params: dict | None = None) -> int:
    return _info(name).classes(params_of(name, params))


def train_size(name: str, params: dict | None = None, data_root: str | None = None) -> int:
    """Training images of `name`, without loading them: from params, or (for datasets that can
    count, i.e. imagenet100) by listing the files under data_root when it is given."""
    info, p = _info(name), params_of(name, params)
    if data_root is not None and info.count is not None:
        return info.count(resolve_root(name, data_root), p)
    return info.train_images(p)


def cached_bytes(name: str, params: dict | None, data_root: str | None, image_size: int,
                 channels: int) -> int:
    """Bytes of `name` decoded at image_size px and `channels` (train + test images, uint8, and
    their int64 labels): what the node-local split cache holds of it (data/cache.py), once per
    node. ImageNet-100 at 224 px, 3 channels: (126,689 + 5,000) x (150,528 + 8) = 19.8 GB."""
    info, p = _info(name), params_of(name, params)
    try:   # a root that can be counted is; one that cannot is the reader's to name
        train = train_size(name, p, data_root)
    except (DataNotFoundError, ValueError):
        train = info.train_images(p)
    return (train + info.test_images(p)) * (channels * image_size ** 2 + 8)


def check(name: str, params: dict | None = None, data_root: str | None = None,
          images: int = 0, download: bool = False) -> list[str]:
    """Why `name` would not load `images` training images from `data_root`: one line per problem,
    [] when none. Lists files and counts them; opens no image. With download (CIFAR), a missing
    root or file is what the download fetches, so it is no problem."""
    info, p = _info(name), params_of(name, params)
    if not info.layout:
        return []
    try:
        root = resolve_root(name, data_root, download)
    except DataNotFoundError as err:
        return [str(err)]
    if download and info.downloads:
        return []
    problems = [f"{name}: {line}{hint(name)}" for line in info.problems(root, p)]
    have = info.count(root, p) if info.count and not problems else info.train_images(p)
    if have < images:
        problems.append(f"{name}: {root} holds {have:,} training images; the sweep asks for up "
                        f"to {images:,} (its largest amount)")
    return problems


def resolve_root(name: str, data_root: str | None, download: bool = False) -> Path:
    """`data_root` as a Path, or a DataNotFoundError naming the layout `name` expects there."""
    layout = DATASETS[name].layout
    if data_root is None:
        raise DataNotFoundError(f"{name} needs a data root (--data-root / data_root=) holding "
                                f"{layout}{hint(name)}")
    root = Path(data_root).expanduser()
    if not root.is_dir() and not (download and DATASETS[name].downloads):
        raise DataNotFoundError(f"{name}: data root {root} does not exist; expected {layout} "
                                f"there{hint(name)}")
    return root


def hint(name: str) -> str:
    return "; --download / download=True fetches it" if DATASETS[name].downloads else ""


# ---------------------------------------------------------------- amounts

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
