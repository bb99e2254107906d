"""The node-local split cache (data/cache.py) and what rests on it: one decode per node however
many workers ask at once, copy-on-write maps that every later load reuses, a subset that is an
index into the mapped split, and a cache directory that cannot take the bytes refused by name."""

import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data import _imagenet100

from raysweep import cli, data
from raysweep.data import cache, load, real
from raysweep.run import stages
from raysweep.run.trial import Context

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
SHAPES = {"train_images": (6, 3, 4, 4), "test_images": (2, 3, 4, 4)}


def _build_logged(log: str, delay_s: float):
    """A build that appends one line to LOG per call, then writes a small, known entry."""
    def build(alloc):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(delay_s)   # long enough that every other worker asks while this one writes
        images = {k: alloc(k, s) for k, s in SHAPES.items()}
        for a in images.values():
            a[:] = np.arange(a.size, dtype=np.uint8).reshape(a.shape)
        return {**images, "train_labels": np.arange(6), "test_labels": np.arange(2)}
    return build


def _worker(root: str, log: str, out: multiprocessing.Queue) -> None:
    arrays = cache.open_entry(root, "toy", 1024, _build_logged(log, 1.0))
    out.put({k: a.tolist() for k, a in arrays.items()})


def test_workers_asking_at_once_decode_once_and_all_map_the_same_entry(tmp_path):
    log, ctx = str(tmp_path / "builds.log"), multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), log, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len(Path(log).read_text().split()) == 1
    assert all(g == got[0] for g in got)
    assert np.array(got[0]["train_images"]).shape == SHAPES["train_images"]
    assert sorted(p.name for p in cache.splits_dir(tmp_path).iterdir()) == [".toy.lock", "toy"]


def test_a_mapped_entry_is_copy_on_write_and_a_later_open_builds_nothing(tmp_path):
    log = str(tmp_path / "builds.log")
    first = cache.open_entry(tmp_path, "toy", 1024, _build_logged(log, 0))
    images = torch.from_numpy(first["train_images"])
    images[0] = 255                       # a trial that wrote by mistake changes its own copy
    again = cache.open_entry(tmp_path, "toy", 1024, _build_logged(log, 0))
    assert isinstance(again["train_images"], np.memmap) and again["train_images"].mode == "c"
    assert int(again["train_images"][0].max()) < 255
    assert len(Path(log).read_text().split()) == 1


def test_a_writer_killed_half_way_leaves_nothing_that_is_read(tmp_path):
    stale = cache.splits_dir(tmp_path) / ".toy.tmp-dead"
    stale.mkdir(parents=True)
    (stale / "train_images.npy").write_bytes(b"half")

    def dies(alloc):
        alloc("train_images", SHAPES["train_images"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.open_entry(tmp_path, "toy", 1024, dies)
    assert sorted(p.name for p in cache.splits_dir(tmp_path).iterdir()) == [".toy.lock"]
    cache.open_entry(tmp_path, "toy", 1024, _build_logged(str(tmp_path / "log"), 0))
    assert (cache.splits_dir(tmp_path) / "toy").is_dir()


def test_decoded_images_are_renamed_into_place_not_copied(tmp_path, monkeypatch):
    """The reader decodes into the cache's own file: the entry holds it, and no other file of
    that size was ever written beside it."""
    root = tmp_path / "root"
    _imagenet100(root)
    monkeypatch.setenv("RAYSWEEP_CACHE", str(tmp_path / "c"))
    load._load.cache_clear()
    saved, save = [], np.save

    def logged_save(path, array):
        saved.append(Path(path).name)
        save(path, array)

    monkeypatch.setattr(np, "save", logged_save)
    ds = load.load_dataset("imagenet100", image_size=16, data_root=str(root))
    assert saved == ["train_labels.npy", "test_labels.npy"]
    assert ds.train.images.shape == (100, 3, 16, 16) and ds.train.images.dtype == torch.uint8
    for label in (0, 57, 99):          # each image next to its own label (its shade)
        assert int(ds.train.images[ds.train.labels == label].float().mean().round()) == \
            20 * label % 250 + 10


def test_a_second_load_in_a_fresh_process_decodes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _imagenet100(root)
    monkeypatch.setenv("RAYSWEEP_CACHE", str(tmp_path / "c"))
    load._load.cache_clear()
    first = load.load_dataset("imagenet100", image_size=16, data_root=str(root)).train.images
    load._load.cache_clear()      # as a new worker: nothing memoised

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(real, "_decode", no_decode)
    second = load.load_dataset("imagenet100", image_size=16, data_root=str(root)).train.images
    assert torch.equal(first, second)
    load._load.cache_clear()


def test_a_trials_subset_is_an_index_into_the_shared_mapped_split(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _imagenet100(root)
    monkeypatch.setenv("RAYSWEEP_CACHE", str(tmp_path / "c"))
    load._load.cache_clear()
    spec_ = {"name": "imagenet100", "params": {}}
    model = {"image_size": 16, "channels": 3}
    ctx = Context(str(tmp_path / "out"), str(root))
    ds, images, _, _, _, index = stages.load_split(spec_, model, ctx, 10, seed=0)
    _, again, _, _, _, other = stages.load_split(spec_, model, ctx, 20, seed=0)
    assert images.data_ptr() == again.data_ptr() == ds.train.images.data_ptr()
    assert len(index) == 10 and set(index.tolist()) <= set(other.tolist())   # nested
    assert images.device.type == "cpu" and len(images) == 100
    load._load.cache_clear()


# ---- a cache directory that cannot take the bytes

def test_a_cache_directory_that_cannot_be_written_is_named_with_the_bytes(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    (line,) = cache.problems(blocked, {"imagenet100-224px": 19_814_000_000})
    assert f"cache directory {blocked}/splits cannot be written" in line
    assert "(19,881,108,864 bytes)" in line and "RAYSWEEP_CACHE" in line


def test_a_cache_directory_with_too_little_room_is_named_with_free_and_needed_bytes(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    (line,) = cache.problems(tmp_path, {"big": free + 1})
    assert re.search(rf"has [\d.]+ GiB \([\d,]+ bytes\) free; the data sets need .*"
                     rf"\({free + 1 + cache.HEADROOM_BYTES:,} bytes\)", line)
    assert cache.problems(tmp_path, {"small": 1}) == []


def test_an_entry_already_there_needs_no_room(tmp_path):
    (cache.splits_dir(tmp_path) / "there").mkdir(parents=True)
    assert cache.problems(tmp_path, {"there": 10 ** 18}) == []


@pytest.mark.parametrize("name", data.dataset_names())
def test_every_dataset_plans_its_cache_bytes_from_the_registry(name):
    """cached_bytes = (train + test images) x (pixels + one int64 label), for every entry."""
    info = data.DATASETS[name]
    p = data.params_of(name, None)
    images = info.train_images(p) + info.test_images(p)
    assert info.test_images(p) > 0
    assert data.cached_bytes(name, None, None, 32, 3) == images * (3 * 32 * 32 + 8)


def test_grid_refuses_an_unwritable_cache_before_anything_starts(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "RAYSWEEP_CACHE": str(blocked)}
    done = subprocess.run([sys.executable, "-m", "raysweep.grid", "--sweep", "smoke", "--out",
                           str(out)], check=False, capture_output=True, text=True, env=env,
                          cwd=Path(cli.__file__).parent.parent)
    assert done.returncode == cli.BAD_INPUT, done.stderr
    assert "cannot be written" in done.stderr and "bytes" in done.stderr
    assert not out.exists() or not any(out.iterdir())
