"""The node-local split cache: a dataset decoded and resized once per (dataset, params, data root,
image size, channels) into .npy files under $RAYSWEEP_CACHE/splits, which every worker on the node
then maps read-only (copy-on-write), so its trials share one copy of the images in the page cache
instead of each decoding and holding its own (docs/design.md §4).

Writing: the first worker takes an exclusive `flock` on the entry's lock file, decodes straight
into memory-mapped .npy files in a temporary directory (so the writer holds no second, anonymous
copy of the set), and renames the directory into place; workers that asked meanwhile block on the
lock, then map what it wrote. A rename is atomic, so a reader sees a whole entry or none; a writer
killed half-way leaves a temporary directory that the next writer removes. Later commands on the
node find the entry and decode nothing.

A cache directory that cannot hold an entry (not writable, or too little free space for the
bytes the entry needs) is an InputError naming the directory and the bytes; `problems` says so
before a command starts anything.

Left out: eviction (entries stay until deleted: `rm -r $RAYSWEEP_CACHE/splits`), and noticing
that files under an unchanged data root path were replaced (delete the entry then).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from raysweep.errors import InputError

VERSION = 1                    # part of every entry's key: bump when decoding or resizing changes
FILES = ("train_images", "train_labels", "test_images", "test_labels")
HEADROOM_BYTES = 64 * 2 ** 20  # .npy headers, the lock file, and a file system's own rounding


class CacheError(InputError):
    """The cache directory cannot hold an entry: unwritable, or too little free space."""


def splits_dir(cache_root: str | Path) -> Path:
    return Path(cache_root).expanduser() / "splits"


def entry_name(name: str, params: dict, data_root: str | None, image_size: int,
               channels: int) -> str:
    """A readable, unique directory name: dataset, size, channels and a hash of everything."""
    key = {"version": VERSION, "name": name, "params": params, "data_root": data_root,
           "image_size": image_size, "channels": channels}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{name}-{image_size}px-{channels}ch-{digest}"


def problems(cache_root: str | Path, entries: dict[str, int]) -> list[str]:
    """Why the cache under `cache_root` could not take `entries` (entry name -> bytes), counting
    only those not there yet: [] when it can. Creates the directory; writes one empty file."""
    where = splits_dir(cache_root)
    missing = {n: b for n, b in entries.items() if not (where / n).is_dir()}
    if not missing:
        return []
    needed = sum(missing.values()) + HEADROOM_BYTES
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".probe-"):
            pass
    except OSError as err:
        return [(f"cache directory {where} cannot be written ({err.strerror or err}); the data "
                 f"sets need {_gib(needed)} decoded there once per node: set RAYSWEEP_CACHE to "
                 f"a writable node-local directory with that much free space")]
    free = shutil.disk_usage(where).free
    if free < needed:
        names = ", ".join(f"{n} ({_gib(b)})" for n, b in sorted(missing.items()))
        return [(f"cache directory {where} has {_gib(free)} free; the data sets need "
                 f"{_gib(needed)} decoded there once per node ({names}): free space, or set "
                 f"RAYSWEEP_CACHE to a node-local directory with room")]
    return []


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:.2f} GiB ({n:,} bytes)"


def open_entry(cache_root: str | Path, name: str, needed_bytes: int,
               build: Callable[[Allocator], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The entry `name`'s four arrays, mapped copy-on-write; built first, under the entry's lock,
    by `build(alloc)` if no worker has built it yet. `build` returns FILES -> arrays; an image
    array it got from `alloc` is renamed into place rather than copied."""
    where = splits_dir(cache_root)
    final = where / name
    if not final.is_dir():
        with _locked(where, name):
            if not final.is_dir():   # another worker may have built it while this one waited
                _build(where, name, needed_bytes, build)
    return {f: np.load(final / f"{f}.npy", mmap_mode="c") for f in FILES}


@contextlib.contextmanager
def _locked(where: Path, name: str) -> Iterator[None]:
    try:
        where.mkdir(parents=True, exist_ok=True)
        lock = open(where / f".{name}.lock", "a+b")  # noqa: SIM115 -- the `with` below closes it
    except OSError as err:
        raise CacheError(f"cache directory {where} cannot be written ({err.strerror or err}); "
                         f"set RAYSWEEP_CACHE to a writable node-local directory") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the file closes
        yield


def _build(where: Path, name: str, needed_bytes: int, build) -> None:
    for stale in where.glob(f".{name}.tmp-*"):   # left by a writer that was killed
        shutil.rmtree(stale, ignore_errors=True)
    lines = problems(where.parent, {name: needed_bytes})
    if lines:
        raise CacheError(lines[0])
    tmp = Path(tempfile.mkdtemp(dir=where, prefix=f".{name}.tmp-"))
    try:
        alloc = Allocator(tmp)
        arrays = build(alloc)
        for f in FILES:
            alloc.place(f, arrays[f])
        alloc.close()
        tmp.chmod(0o755)   # mkdtemp's 0700 would hide the entry from other users of the node
        os.rename(tmp, where / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class Allocator:
    """Hands out uint8 arrays backed by .npy files in the entry's temporary directory, so decoded
    images go to the page cache (written back to disk) rather than to anonymous memory."""

    def __init__(self, folder: Path):
        self.folder, self.files = folder, {}   # data address -> (array, its file), for `place`

    def __call__(self, tag: str, shape: tuple[int, ...]) -> np.ndarray:
        if not np.prod(shape):          # nothing to map (an empty split)
            return np.empty(shape, dtype=np.uint8)
        path = self.folder / f"{tag}.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        self.files[array.ctypes.data] = (array, path)
        return array

    def place(self, name: str, array: np.ndarray) -> None:
        """`array` as FILES entry `name`: its own file renamed when it has one, else written."""
        owned = self.files.get(array.ctypes.data)
        if owned is not None and owned[0].shape == array.shape:
            del self.files[array.ctypes.data]
            owned[0].flush()
            os.replace(owned[1], self.folder / f"{name}.npy")
            return
        np.save(self.folder / f"{name}.npy", np.ascontiguousarray(array))

    def close(self) -> None:
        """Remove the intermediate files nobody placed (e.g. RGB decoded for a gray split)."""
        for array, path in self.files.values():
            del array
            path.unlink(missing_ok=True)
        self.files.clear()
