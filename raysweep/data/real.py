"""Readers of the real datasets' on-disk formats: CIFAR-10/100 (torchvision's pickles),
TinyImageNet and ImageNet-100 (image folders). Each returns raw uint8 tensors; `raysweep.data`
owns the registry, the resizing to the model's size, the channels and the memo, and is the only
module callers use.

Kept apart from the registry (data/__init__.py) because it is the one part that knows file
layouts and image decoding; the registry stays about tensors, amounts and subsets.

CIFAR's pickles are read by `SafeUnpickler`, which resolves only the names such a file holds
(numpy's array reconstruction, dtypes, a few builtins): a file that would build anything else --
an `os.system` call hidden in a `__reduce__` -- is refused, naming the file, before any of it runs.
A data root is often a shared directory that others write to.

Each layout also has a `*_problems(root, params)` that says what is missing without decoding an
image (`raysweep.data.check`, run by the commands before anything starts).

Left out: download of TinyImageNet / ImageNet (licensed or hosted without a stable URL; CIFAR
downloads through torchvision when asked).
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from raysweep.errors import InputError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
MAX_LISTED = 5                 # missing paths named one by one; the rest are counted

# Expected files under the data root, quoted in error messages.
TINYIMAGENET_LAYOUT = ("tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG, "
                       "val/images/*.JPEG, val/val_annotations.txt}")
IMAGENET100_LAYOUT = ("{train,val}/<wnid>/*.JPEG and imagenet100.txt (one wnid per line; or "
                      "params.class_list)")

Raw = tuple  # (train images, train labels, test images, test labels): uint8 NCHW, int64


class DataNotFoundError(InputError, FileNotFoundError):
    """A data root or file is missing; the message names the path and the expected layout."""


class UnsafePickleError(InputError):
    """A pickle under the data root names something a CIFAR batch never holds."""


def resized(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, image_size, image_size), antialiased; unchanged if it fits."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    return TF.resize(images, [image_size, image_size], antialias=True)


# ---------------------------------------------------------------- CIFAR

def cifar(tv_class):
    """A loader for CIFAR in torchvision's on-disk pickles, read directly: torchvision's
    constructor md5-checks every file (seconds per load, and it rejects any other copy of the
    layout), so only the download goes through it; the file names come from its class
    attributes."""
    def load(root: Path, params: dict, image_size: int, download: bool) -> Raw:
        if download:
            tv_class(root=str(root), train=True, download=True)
        base = root / tv_class.base_folder
        out = []
        for files in (tv_class.train_list, tv_class.test_list):
            x, y = zip(*(_cifar_batch(base / name) for name, _md5 in files))
            out += [torch.from_numpy(np.concatenate(x)), torch.from_numpy(np.concatenate(y))]
        return tuple(out)
    return load


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


def cifar_problems(tv_class):
    """The files of torchvision's CIFAR layout missing under a root (a fixed 50,000 images)."""
    def problems(root: Path, params: dict) -> list[str]:
        base = root / tv_class.base_folder
        names = [n for n, _ in tv_class.train_list + tv_class.test_list]
        return [f"missing file {base / n}" for n in names if not (base / n).is_file()]
    return problems


def cifar_layout(tv_class) -> str:
    names = [n for n, _ in tv_class.train_list + tv_class.test_list] + [tv_class.meta["filename"]]
    return f"{tv_class.base_folder}/{{{', '.join(names)}}} (torchvision's CIFAR pickles)"


# ---------------------------------------------------------------- image folders

def tinyimagenet(root: Path, params: dict, image_size: int, download: bool) -> Raw:
    """train/<wnid>/images/* by class; val/ labelled from val_annotations.txt; classes (sorted)
    from wnids.txt."""
    base = root / "tiny-imagenet-200"
    wnids = sorted(_lines(base / "wnids.txt"))
    index = {w: i for i, w in enumerate(wnids)}
    train = [(p, index[w]) for w in wnids for p in _images_in(base / "train" / w / "images")]
    test = []
    for line in _lines(base / "val" / "val_annotations.txt"):
        name, wnid = line.split("\t")[:2]
        if wnid not in index:
            raise ValueError(f"{base / 'val' / 'val_annotations.txt'}: {name} has class {wnid!r}, "
                             f"which is not in wnids.txt")
        test.append((base / "val" / "images" / name, index[wnid]))
    return (*_decode(train, image_size), *_decode(test, image_size))


def imagenet100(root: Path, params: dict, image_size: int, download: bool) -> Raw:
    """ImageNet's train/ and val/ class folders restricted to the 100 wnids of the class list."""
    wnids = sorted(_lines(_class_list(root, params)))
    if len(wnids) != 100:
        raise ValueError(f"imagenet100: class list {_class_list(root, params)} names "
                         f"{len(wnids)} classes, expected 100")
    out = []
    for split in ("train", "val"):
        out += _decode([(p, i) for i, w in enumerate(wnids)
                        for p in _images_in(root / split / w)], image_size)
    return tuple(out)


def tinyimagenet_count(root: Path, params: dict) -> int:
    """Training images of TinyImageNet under `root`, by listing the files (nothing decoded)."""
    base = root / "tiny-imagenet-200"
    return sum(len(_images_in(base / "train" / w / "images")) for w in _lines(base / "wnids.txt"))


def tinyimagenet_problems(root: Path, params: dict) -> list[str]:
    base = root / "tiny-imagenet-200"
    problems = _missing([base / "wnids.txt", base / "val" / "val_annotations.txt"],
                        [base / "val" / "images"])
    if not problems:
        problems = _missing([], [base / "train" / w / "images" for w in _lines(base / "wnids.txt")])
    return problems


def imagenet100_problems(root: Path, params: dict) -> list[str]:
    """The class list (100 distinct wnids) and a train/ and val/ folder for each of them."""
    listed = _class_list(root, params)
    if not listed.is_file():
        return [f"missing class list {listed} (one wnid per line; or params.class_list)"]
    wnids = _lines(listed)
    if len(set(wnids)) != 100:
        return [f"class list {listed} names {len(set(wnids))} distinct classes, expected 100"]
    return _missing([], [root / split / w for split in ("train", "val") for w in wnids])


def _missing(files: list[Path], folders: list[Path]) -> list[str]:
    """One line per missing path; past MAX_LISTED, one line that counts the rest."""
    lines = ([f"missing file {p}" for p in files if not p.is_file()]
             + [f"missing image folder {p}" for p in folders if not p.is_dir()])
    if len(lines) > MAX_LISTED:
        lines = lines[:MAX_LISTED] + [f"... and {len(lines) - MAX_LISTED} more missing"]
    return lines


def imagenet100_count(root: Path, params: dict) -> int:
    """Training images of ImageNet-100 under `root`, by listing the files (nothing decoded)."""
    wnids = _lines(_class_list(root, params))
    return sum(len(_images_in(root / "train" / w)) for w in wnids)


def _class_list(root: Path, params: dict) -> Path:
    return Path(params["class_list"]).expanduser() if params.get("class_list") \
        else root / "imagenet100.txt"


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataNotFoundError(f"missing file {path}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataNotFoundError(f"missing image folder {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _decode(items: list[tuple[Path, int]], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode (path, label) pairs into uint8 (N, 3, S, S): one decode + resize per file (sizes
    differ across files in ImageNet, so a batch resize would need padding). torchvision 0.29
    deprecates its decoders for TorchCodec, which is not a dependency: the warning is muted."""
    images = torch.empty(len(items), 3, image_size, image_size, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
        for i, (path, _) in enumerate(items):
            if not path.is_file():
                raise DataNotFoundError(f"missing image {path}")
            images[i] = resized(decode_image(str(path), mode=ImageReadMode.RGB), image_size)
    return images, torch.tensor([label for _, label in items], dtype=torch.int64)
