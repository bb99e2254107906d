"""What a data root must hold for each real dataset, checked without decoding an image: the
expected files (quoted in errors), what is missing under a root, and how many training images it
holds. `raysweep.data.check` runs these before anything starts; the readers (data/real.py) use the
same listings to find the files they decode.

Kept apart from the readers because checking a root needs neither torch nor torchvision: the
commands plan and check a sweep, and Tune workers receive the planned trials, in processes that may
never load an image (BENCHMARKS.md, "Worker imports"). CIFAR's file names are torchvision's (its
classes' `base_folder`, `train_list`, `test_list`, `meta`), written out here; tests/test_data.py
checks them against torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raysweep.errors import InputError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
MAX_LISTED = 5                 # missing paths named one by one; the rest are counted

# Expected files under the data root, quoted in error messages.
TINYIMAGENET_LAYOUT = ("tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG, "
                       "val/images/*.JPEG, val/val_annotations.txt}")
IMAGENET100_LAYOUT = ("{train,val}/<wnid>/*.JPEG and imagenet100.txt (one wnid per line; or "
                      "params.class_list)")


class DataNotFoundError(InputError, FileNotFoundError):
    """A data root or file is missing; the message names the path and the expected layout."""


# ---------------------------------------------------------------- CIFAR

@dataclass(frozen=True)
class CifarFiles:
    folder: str                # under the data root
    train: tuple[str, ...]     # pickled batches
    test: tuple[str, ...]
    meta: str                  # class names (not read; part of the layout torchvision writes)
    downloader: str            # the torchvision.datasets class that downloads it


CIFAR = {
    "cifar10": CifarFiles("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                          ("test_batch",), "batches.meta", "CIFAR10"),
    "cifar100": CifarFiles("cifar-100-python", ("train",), ("test",), "meta", "CIFAR100"),
}


def cifar_problems(name: str):
    """The files of torchvision's CIFAR layout missing under a root (a fixed 50,000 images)."""
    files = CIFAR[name]

    def problems(root: Path, params: dict) -> list[str]:
        base = root / files.folder
        return [f"missing file {base / n}" for n in files.train + files.test
                if not (base / n).is_file()]
    return problems


def cifar_layout(name: str) -> str:
    files = CIFAR[name]
    names = files.train + files.test + (files.meta,)
    return f"{files.folder}/{{{', '.join(names)}}} (torchvision's CIFAR pickles)"


# ---------------------------------------------------------------- image folders

def tinyimagenet_count(root: Path, params: dict) -> int:
    """Training images of TinyImageNet under `root`, by listing the files (nothing decoded)."""
    base = root / "tiny-imagenet-200"
    return sum(len(images_in(base / "train" / w / "images")) for w in lines(base / "wnids.txt"))


def tinyimagenet_problems(root: Path, params: dict) -> list[str]:
    base = root / "tiny-imagenet-200"
    problems = _missing([base / "wnids.txt", base / "val" / "val_annotations.txt"],
                        [base / "val" / "images"])
    if not problems:
        problems = _missing([], [base / "train" / w / "images" for w in lines(base / "wnids.txt")])
    return problems


def imagenet100_problems(root: Path, params: dict) -> list[str]:
    """The class list (100 distinct wnids) and a train/ and val/ folder for each of them."""
    listed = class_list(root, params)
    if not listed.is_file():
        return [f"missing class list {listed} (one wnid per line; or params.class_list)"]
    wnids = lines(listed)
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
    wnids = lines(class_list(root, params))
    return sum(len(images_in(root / "train" / w)) for w in wnids)


def class_list(root: Path, params: dict) -> Path:
    return Path(params["class_list"]).expanduser() if params.get("class_list") \
        else root / "imagenet100.txt"


def lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataNotFoundError(f"missing file {path}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataNotFoundError(f"missing image folder {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
