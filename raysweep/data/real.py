"""Readers of the real datasets' on-disk formats: CIFAR-10/100 (torchvision's pickles),
TinyImageNet and ImageNet-100 (image folders). Each returns raw uint8 tensors; raysweep.data.load
owns the resizing to the model's size, the channels and the memo, and is the only module callers
use. What a root must hold, and what of it is missing, is data/layouts.py (no torch there).

CIFAR's pickles are read by `SafeUnpickler`, which resolves only the names such a file holds
(numpy's array reconstruction, dtypes, a few builtins): a file that would build anything else --
an `os.system` call hidden in a `__reduce__` -- is refused, naming the file, before any of it runs.
A data root is often a shared directory that others write to.

Left out: download of TinyImageNet / ImageNet (licensed or hosted without a stable URL; CIFAR
downloads through torchvision when asked).
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv_datasets
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from raysweep.data import layouts
from raysweep.data.layouts import DataNotFoundError
from raysweep.errors import InputError

Raw = tuple  # (train images, train labels, test images, test labels): uint8 NCHW, int64


def in_memory(tag: str, shape: tuple[int, ...]) -> np.ndarray:
    """The default `alloc` of the readers: an ordinary array (the split cache passes one that
    is backed by a file, so decoded images never exist twice; data/cache.py)."""
    return np.empty(shape, dtype=np.uint8)


class UnsafePickleError(InputError):
    """A pickle under the data root names something a CIFAR batch never holds."""


def resized(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, image_size, image_size), antialiased; unchanged if it fits."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    return TF.resize(images, [image_size, image_size], antialias=True)


# ---------------------------------------------------------------- CIFAR

def cifar(name: str):
    """A loader for CIFAR in torchvision's on-disk pickles, read directly: torchvision's
    constructor md5-checks every file (seconds per load, and it rejects any other copy of the
    layout), so only the download goes through it."""
    files = layouts.CIFAR[name]

    def load(root: Path, params: dict, image_size: int, download: bool, alloc=in_memory) -> Raw:
        if download:
            getattr(tv_datasets, files.downloader)(root=str(root), train=True, download=True)
        out = []
        for names in (files.train, files.test):
            x, y = zip(*(_cifar_batch(root / files.folder / n) for n in names))
            out += [torch.from_numpy(np.concatenate(x)), torch.from_numpy(np.concatenate(y))]
        return tuple(out)
    return load


cifar10, cifar100 = cifar("cifar10"), cifar("cifar100")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataNotFoundError(f"missing file {path}")
    with open(path, "rb") as f:
        entry = SafeUnpickler(f, encoding="latin1").load()
    labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
    images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)   # rows are CHW
    return images, np.asarray(labels, dtype=np.int64)


# (module, name) -> what a CIFAR batch needs it for. Python 2 pickles (the published files) name
# numpy.core; numpy 2 writes numpy._core; protocol 2 spells bytes as _codecs.encode(str, latin1).
_SAFE_GLOBALS = {
    **{(m, n): "numpy array" for m in ("numpy.core.multiarray", "numpy._core.multiarray")
       for n in ("_reconstruct", "scalar")},
    **{(m, "_frombuffer"): "numpy array" for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): "numpy array", ("numpy", "dtype"): "numpy dtype",
    ("_codecs", "encode"): "bytes (protocol 2)",
    **{(m, n): "builtin" for m in ("builtins", "__builtin__")
       for n in ("dict", "list", "tuple", "str", "bytes", "int", "float")},
}


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only _SAFE_GLOBALS: what CIFAR's batches are made of."""

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self.where = getattr(file, "name", "a pickle")

    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise UnsafePickleError(
                f"refusing to unpickle {self.where}: it names {module}.{name}, which a CIFAR "
                f"batch never holds (expected only numpy arrays, dicts, lists, strings and "
                f"numbers); replace the file with torchvision's original")
        return super().find_class(module, name)


# ---------------------------------------------------------------- image folders

def tinyimagenet(root: Path, params: dict, image_size: int, download: bool,
                 alloc=in_memory) -> Raw:
    """train/<wnid>/images/* by class; val/ labelled from val_annotations.txt; classes (sorted)
    from wnids.txt."""
    base = root / "tiny-imagenet-200"
    wnids = sorted(layouts.lines(base / "wnids.txt"))
    index = {w: i for i, w in enumerate(wnids)}
    train = [(p, index[w]) for w in wnids
             for p in layouts.images_in(base / "train" / w / "images")]
    test = []
    for line in layouts.lines(base / "val" / "val_annotations.txt"):
        name, wnid = line.split("\t")[:2]
        if wnid not in index:
            raise ValueError(f"{base / 'val' / 'val_annotations.txt'}: {name} has class {wnid!r}, "
                             f"which is not in wnids.txt")
        test.append((base / "val" / "images" / name, index[wnid]))
    return (*_decode(train, image_size, alloc, "decoded_train"),
            *_decode(test, image_size, alloc, "decoded_test"))


def imagenet100(root: Path, params: dict, image_size: int, download: bool,
                alloc=in_memory) -> Raw:
    """ImageNet's train/ and val/ class folders restricted to the 100 wnids of the class list."""
    wnids = sorted(layouts.lines(layouts.class_list(root, params)))
    if len(wnids) != 100:
        raise ValueError(f"imagenet100: class list {layouts.class_list(root, params)} names "
                         f"{len(wnids)} classes, expected 100")
    out = []
    for split, tag in (("train", "decoded_train"), ("val", "decoded_test")):
        out += _decode([(p, i) for i, w in enumerate(wnids)
                        for p in layouts.images_in(root / split / w)], image_size, alloc, tag)
    return tuple(out)


def _decode(items: list[tuple[Path, int]], image_size: int, alloc=in_memory,
            tag: str = "decoded") -> tuple[torch.Tensor, torch.Tensor]:
    """Decode (path, label) pairs into uint8 (N, 3, S, S) from `alloc(tag, shape)`: one decode +
    resize per file (sizes differ across files in ImageNet, so a batch resize would need padding).
    torchvision 0.29 deprecates its decoders for TorchCodec, which is not a dependency: the
    warning is muted."""
    images = torch.from_numpy(alloc(tag, (len(items), 3, image_size, image_size)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
        for i, (path, _) in enumerate(items):
            if not path.is_file():
                raise DataNotFoundError(f"missing image {path}")
            images[i] = resized(decode_image(str(path), mode=ImageReadMode.RGB), image_size)
    return images, torch.tensor([label for _, label in items], dtype=torch.int64)
