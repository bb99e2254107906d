"""The dataset registry, loaded from tiny files in each on-disk layout (the nested subsets:
test_subsets.py).

Every registry entry has a FIXTURES row that writes a miniature copy of its layout (or nothing,
for the generated and packaged ones); a new dataset without one fails
test_every_dataset_has_a_fixture. Images of class c are painted a flat grey of 20 * c + 10 (or
a colour, for CIFAR), so a test can check that each label sits next to its own image."""

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.io import write_jpeg

from raysweep import data
from raysweep.data import layouts, load, real

# torchvision 0.29 deprecates its JPEG encoder for TorchCodec (not a dependency).
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def _shade(label: int) -> int:
    return 20 * label % 250 + 10


def _jpeg(path: Path, label: int, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jpeg(torch.full((3, size, size), _shade(label), dtype=torch.uint8), str(path), 100)


def _cifar_pickle(path: Path, labels: list[int], key: str) -> None:
    rows = np.stack([np.full(3 * 32 * 32, _shade(c), np.uint8) for c in labels])
    rows[:, 1024:] = 0                       # red plane only (CHW rows): luma of red is .299 R
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"data": rows, key: labels}, f)


def _cifar10(root: Path) -> dict:
    base = root / "cifar-10-batches-py"
    for i in range(1, 6):
        _cifar_pickle(base / f"data_batch_{i}", [i - 1, i + 4], "labels")
    _cifar_pickle(base / "test_batch", [3, 7, 9], "labels")
    return {"train": 10, "test": 3}


def _cifar100(root: Path) -> dict:
    base = root / "cifar-100-python"
    _cifar_pickle(base / "train", [0, 5, 99, 42], "fine_labels")
    _cifar_pickle(base / "test", [99, 1], "fine_labels")
    return {"train": 4, "test": 2}


def _tinyimagenet(root: Path) -> dict:
    base = root / "tiny-imagenet-200"
    wnids = ["n03", "n01", "n02"]                # file order differs from sorted order
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for c, wnid in enumerate(sorted(wnids)):
        for k in range(2):
            _jpeg(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", c)
    notes = [f"val_{k}.JPEG\t{wnid}\t0\t0\t10\t10" for k, wnid in enumerate(["n02", "n03"])]
    for k, wnid in enumerate(["n02", "n03"]):
        _jpeg(base / "val" / "images" / f"val_{k}.JPEG", sorted(wnids).index(wnid))
    (base / "val" / "val_annotations.txt").write_text("\n".join(notes) + "\n")
    return {"train": 6, "test": 2}


def _imagenet100(root: Path) -> dict:
    wnids = [f"n{c:03d}" for c in range(100)]
    (root / "imagenet100.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "imagenet100.txt").write_text("\n".join(reversed(wnids)))
    for c, wnid in enumerate(wnids):
        _jpeg(root / "train" / wnid / "a.JPEG", c, size=12 + c % 3)   # sizes differ
        _jpeg(root / "val" / wnid / "b.JPEG", c)
    (root / "train" / "n999").mkdir()       # folders outside the list are ignored
    _jpeg(root / "train" / "n999" / "x.JPEG", 1)
    return {"train": 100, "test": 100}


FIXTURES = {  # name -> (writer of a data root or None, params)
    "fractal": (None, {"classes": 3, "images_per_class": 4, "test_per_class": 2}),
    "digits": (None, {}),
    "cifar10": (_cifar10, {}),
    "cifar100": (_cifar100, {}),
    "tinyimagenet": (_tinyimagenet, {}),
    "imagenet100": (_imagenet100, {}),
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict:
    """name -> (data root or None, expected split sizes or None)."""
    out = {}
    for name, (writer, _) in FIXTURES.items():
        root = tmp_path_factory.mktemp(name) if writer else None
        out[name] = (str(root) if root else None, writer(root) if writer else None)
    return out


def _load(name, roots, **kwargs):
    root, _ = roots[name]
    return load.load_dataset(name, data_root=root, params=FIXTURES[name][1], **kwargs)


def test_every_dataset_has_a_fixture():
    assert sorted(FIXTURES) == data.dataset_names() == sorted(data.DATASETS)


@pytest.mark.parametrize("name", sorted(layouts.CIFAR))
def test_cifar_files_are_the_ones_torchvision_downloads(name):
    """layouts.CIFAR writes torchvision's layout out so that checking a root needs no torchvision;
    a torchvision that moved its files would break loading a root it downloaded."""
    files = layouts.CIFAR[name]
    tv_class = getattr(torchvision.datasets, files.downloader)
    assert files.folder == tv_class.base_folder
    assert files.train == tuple(n for n, _md5 in tv_class.train_list)
    assert files.test == tuple(n for n, _md5 in tv_class.test_list)
    assert files.meta == tv_class.meta["filename"]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", data.dataset_names())
def test_every_dataset_loads_at_the_requested_size_and_channels(name, channels, roots):
    ds = _load(name, roots, image_size=16, channels=channels)
    classes = data.num_classes(name, FIXTURES[name][1])
    assert ds.name == name and ds.num_classes == classes
    for split in (ds.train, ds.test):
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert split.images.shape == (len(split), channels, 16, 16) and len(split) > 0
        assert 0 <= split.labels.min() and split.labels.max() < classes
    expected = roots[name][1]
    if expected:
        assert (len(ds.train), len(ds.test)) == (expected["train"], expected["test"])
    else:
        assert len(ds.train) == data.train_size(name, FIXTURES[name][1])


@pytest.mark.parametrize("name", ["tinyimagenet", "imagenet100", "cifar10", "cifar100"])
def test_each_label_sits_next_to_its_own_image(name, roots):
    ds = _load(name, roots, image_size=8, channels=3)
    red = ds.train.images[:, 0].float().mean((1, 2))
    shade = torch.tensor([_shade(int(c)) for c in ds.train.labels]).float()
    assert (red - shade).abs().max() < 3           # JPEG at quality 100 is nearly exact


def test_cifar_pixels_are_read_in_channel_plane_order(roots):
    ds = _load("cifar10", roots, image_size=32, channels=3)       # native size: no resampling
    first = ds.train.images[0]                                    # label 0: shade 10, red only
    assert (first[0] == 10).all() and (first[1:] == 0).all()
    gray = _load("cifar10", roots, image_size=32, channels=1).train.images
    assert gray.shape[1] == 1 and int(gray[0, 0, 0, 0]) == round(0.299 * 10)


def test_tinyimagenet_classes_follow_sorted_wnids(roots):
    ds = _load("tinyimagenet", roots, image_size=8)
    assert ds.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.test.labels.tolist() == [1, 2]                     # n02, n03


def test_gray_to_rgb_repeats_the_plane_and_resizing_keeps_the_picture():
    small = load.load_dataset("digits", image_size=8, channels=1)
    big = load.load_dataset("digits", image_size=32, channels=3)
    assert torch.equal(big.train.images[:, 0], big.train.images[:, 2])
    assert int(small.train.images.max()) == 255                  # 16 -> 255
    shrunk = torch.nn.functional.avg_pool2d(big.train.images[:, :1].float(), 4).flatten()
    same = torch.corrcoef(torch.stack([shrunk, small.train.images.float().flatten()]))[0, 1]
    moved = torch.corrcoef(torch.stack([shrunk, small.train.images.roll(1, -1).float()
                                        .flatten()]))[0, 1]
    assert same > 0.9 and moved < 0.6, (same, moved)             # same picture, not shifted
    assert len(small.test) == 360 and small.flip is False


def test_digits_test_split_is_fixed_and_stratified():
    test = load.load_dataset("digits", image_size=8).test.labels
    assert test.bincount().tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]


def test_loads_are_memoised_per_argument_tuple():
    a = load.load_dataset("digits", image_size=8)
    assert load.load_dataset("digits", image_size=8, params={}) is a
    assert load.load_dataset("digits", image_size=8, channels=1) is not a


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*cifar10.*tinyimagenet"):
        load.load_dataset("imagenet", image_size=8)
    with pytest.raises(ValueError, match="unknown dataset"):
        data.train_size("imagenet")


@pytest.mark.parametrize("name", [n for n in data.dataset_names() if data.DATASETS[n].layout])
def test_missing_data_root_names_the_path_and_layout(name, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*expected"):
        load.load_dataset(name, image_size=8, data_root=str(missing))
    with pytest.raises(ValueError, match=f"{name} needs a data root"):
        load.load_dataset(name, image_size=8)


def test_missing_files_name_the_file_and_cifar_suggests_download(tmp_path, roots):
    with pytest.raises(ValueError, match=r"data_batch_1.*cifar-10-batches-py.*--download"):
        load.load_dataset("cifar10", image_size=8, data_root=str(tmp_path))
    (tmp_path / "imagenet100.txt").write_text("n000\n")
    with pytest.raises(ValueError, match="names 1 classes, expected 100"):
        load.load_dataset("imagenet100", image_size=8, data_root=str(tmp_path))


def test_a_class_list_naming_a_missing_folder_is_reported(tmp_path):
    lst = tmp_path / "mine.txt"
    lst.write_text("\n".join(f"n{c:03d}" for c in range(100)))
    for c in range(99):
        _jpeg(tmp_path / "train" / f"n{c:03d}" / "a.JPEG", c)
    with pytest.raises(ValueError, match=r"missing image folder .*train/n099"):
        load.load_dataset("imagenet100", image_size=8, data_root=str(tmp_path),
                          params={"class_list": str(lst)})


@pytest.mark.parametrize("kwargs, match", [
    ({"params": {"colour": 1}}, r"digits: unknown params \['colour'\]"),
    ({"image_size": 0}, "image_size must be a positive integer"),
    ({"channels": 2}, r"channels must be one of \[1, 3\]"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load.load_dataset("digits", **{"image_size": 8, **kwargs})


def test_train_size_without_loading(roots):
    assert data.train_size("fractal", {"classes": 7, "images_per_class": 30}) == 210
    assert data.train_size("cifar100") == 50_000 and data.train_size("tinyimagenet") == 100_000
    assert data.train_size("imagenet100") == 126_689
    assert data.train_size("imagenet100", data_root=roots["imagenet100"][0]) == 100
    assert data.num_classes("cifar100") == 100 and data.num_classes("tinyimagenet") == 200


# ---------------------------------------------------------------- the check before a run

@pytest.mark.parametrize("name", data.dataset_names())
def test_check_passes_every_fixture_at_its_full_size_and_fails_one_image_more(name, roots):
    root, sizes = roots[name]
    params = FIXTURES[name][1]
    have = data.train_size(name, params, data_root=root)
    assert data.check(name, params, root, have) == []
    if data.DATASETS[name].count is not None:   # counts files: one image more is refused
        assert sizes["train"] == have
        (problem,) = data.check(name, params, root, have + 1)
        assert f"holds {have:,} training images" in problem and f"{have + 1:,}" in problem


@pytest.mark.parametrize("name", [n for n in data.dataset_names() if data.DATASETS[n].layout])
def test_check_names_a_missing_root_and_the_layout_without_raising(name, tmp_path):
    (problem,) = data.check(name, None, str(tmp_path / "nowhere"), 10)
    assert str(tmp_path / "nowhere") in problem and data.DATASETS[name].layout in problem
    (problem,) = data.check(name, None, None, 10)
    assert f"{name} needs a data root" in problem


@pytest.mark.parametrize("name, remove, words", [
    ("cifar10", "cifar-10-batches-py/data_batch_3", ["missing file", "data_batch_3",
                                                     "--download"]),
    ("cifar100", "cifar-100-python/test", ["missing file", "cifar-100-python/test"]),
    ("tinyimagenet", "tiny-imagenet-200/val/val_annotations.txt", ["val_annotations.txt"]),
    ("tinyimagenet", "tiny-imagenet-200/train/n02/images", ["missing image folder",
                                                            "train/n02/images"]),
    ("imagenet100", "val/n042", ["missing image folder", "val/n042"]),
    ("imagenet100", "imagenet100.txt", ["missing class list", "imagenet100.txt"]),
])
def test_check_names_each_missing_part_of_the_layout(name, remove, words, tmp_path):
    FIXTURES[name][0](tmp_path)
    target = tmp_path / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    problems = data.check(name, None, str(tmp_path), 2)
    assert len(problems) == 1 and problems[0].startswith(f"{name}: "), problems
    assert all(w in problems[0] for w in words), problems


def test_check_counts_a_long_list_of_missing_folders_instead_of_listing_it(tmp_path):
    _imagenet100(tmp_path)
    shutil.rmtree(tmp_path / "val")
    problems = data.check("imagenet100", None, str(tmp_path), 2)
    assert len(problems) == layouts.MAX_LISTED + 1
    assert problems[-1] == f"imagenet100: ... and {100 - layouts.MAX_LISTED} more missing"


def test_check_of_a_class_list_that_is_not_100_classes(tmp_path):
    _imagenet100(tmp_path)
    (tmp_path / "imagenet100.txt").write_text("n000\nn001\nn001\n")
    (problem,) = data.check("imagenet100", None, str(tmp_path), 2)
    assert "names 2 distinct classes, expected 100" in problem


def test_check_with_download_leaves_what_is_missing_to_the_download(tmp_path):
    assert data.check("cifar10", None, str(tmp_path / "new"), 50_000, download=True) == []
    assert data.check("tinyimagenet", None, str(tmp_path / "new"), 2, download=True) != []


# ---------------------------------------------------------------- CIFAR pickles, restricted

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_cifar_pickle_that_would_run_code_is_refused_naming_the_file(tmp_path):
    _cifar10(tmp_path)
    marker, batch = tmp_path / "ran", tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(batch, "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [0],
                     "x": _Payload(marker)}, f)
    with pytest.raises(real.UnsafePickleError) as err:
        load.load_dataset("cifar10", image_size=8, data_root=str(tmp_path))
    assert f"refusing to unpickle {batch}: it names posix.system" in str(err.value)
    assert not marker.exists()                      # refused before anything ran


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_cifar_pickles_of_every_protocol_still_load(protocol, tmp_path):
    """What torchvision's files hold: a dict of a uint8 array, label lists, bytes and strings."""
    rows = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    entry = {"data": rows, "labels": [3, 1], "batch_label": b"training batch 1 of 5",
             "filenames": ["a.png", "b.png"]}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(entry, protocol=protocol))
    images, labels = real._cifar_batch(path)
    assert images.shape == (2, 3, 32, 32) and np.array_equal(images.reshape(2, -1), rows)
    assert labels.tolist() == [3, 1]
