"""Where results and checkpoints live: OUT is a local path or a URI pyarrow.fs understands.

Every reader and writer goes through these few functions, so nothing else cares whether OUT is
`runs/x` or `s3://bucket/runs/x`. Paths below OUT (`relpath`) are always `/`-separated.

Writes are whole-or-nothing (docs/design.md §5):
- on a file system, bytes go to a hidden temp name in the target's directory, are fsync'ed, then
  os.replace'd over the target (a rename within one directory is atomic on POSIX), so a reader
  sees the old file or the new one, never a partial one;
- on object storage there is no rename, and none is needed: an object becomes visible only when
  its upload completes (one PUT, or the final CompleteMultipartUpload for a large one), so the
  bytes are written straight to their key.

S3 endpoint and credentials come from the usual AWS variables (AWS_ACCESS_KEY_ID, AWS_REGION,
instance profile, ...). pyarrow 26's FileSystem.from_uri honours AWS_ENDPOINT_URL by itself (checked
against a moto server in tests/test_storage.py), so no endpoint_override is passed here.

Left out, on purpose:
- hdfs:// and other URI schemes: they need a rename strategy of their own and cannot be tested
  here, so they fail with the list of supported schemes instead of half-working;
- checking that a shared file system is mounted at the same path on every node: only the node
  that calls node_local_reason can be inspected; the message says what the cluster needs.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import uuid

import pyarrow.fs as pafs

from raysweep.errors import InputError

# URI schemes with a known write strategy; all but `file` are object stores (no rename, atomic PUT).
OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss")
SCHEMES = ("file",) + OBJECT_STORE_SCHEMES

# Mount types that every node of a cluster can share. Anything else (ext4, xfs, overlay, tmpfs,
# btrfs, ...) is taken to be the node's own disk.
SHARED_FILESYSTEMS = (
    "nfs", "nfs4",              # NFS, and AWS EFS / GCP Filestore (mounted as nfs4)
    "cifs", "smb3", "smbfs",    # SMB, Azure Files
    "lustre",                   # Lustre, AWS FSx for Lustre
    "gpfs", "beegfs", "glusterfs", "ceph", "wekafs", "panfs", "ocfs2", "gfs2",
)
SHARED_PREFIXES = ("fuse.",)    # FUSE network mounts: fuse.s3fs, fuse.gcsfuse, fuse.juicefs, ...
MOUNTS_FILE = "/proc/mounts"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")  # /proc/mounts writes ' ' as \040, '\t' as \011
TEMP_SUFFIX = ".tmp"            # temp files are `.<name>.<uuid>.tmp`: hidden, never listed


def scheme(out: str) -> str:
    """The URI scheme of OUT ('file' for a plain path)."""
    return out.split("://", 1)[0].lower() if "://" in out else "file"


def is_remote(out: str) -> bool:
    """True for object storage (s3://, gs://, ...); False for a local path or file:// URI."""
    return _checked_scheme(out) != "file"


def _checked_scheme(out: str) -> str:
    found = scheme(out)
    if found not in SCHEMES:
        raise InputError(f"output location {out!r} has URI scheme {found!r}; expected a local "
                         f"path or one of {', '.join(s + '://' for s in SCHEMES)}")
    return found


def absolute(out: str) -> str:
    """OUT with a local path made absolute, so it means the same in a worker with another cwd."""
    return out if "://" in out else os.path.abspath(out)


@functools.cache
def resolve(out: str) -> tuple[pafs.FileSystem, str]:
    """(file system, root path inside it) for OUT; one file-system object per OUT per process."""
    if _checked_scheme(out) == "file" and "://" not in out:
        return pafs.LocalFileSystem(), os.path.abspath(out)
    fs, root = pafs.FileSystem.from_uri(out)
    return fs, root.rstrip("/")


def _path(out: str, relpath: str) -> tuple[pafs.FileSystem, str]:
    if not relpath or relpath.startswith("/") or ".." in relpath.split("/"):
        raise ValueError(f"path {relpath!r} under {out!r} must be relative, non-empty and stay "
                         f"below it (no leading '/', no '..')")
    fs, root = resolve(out)
    return fs, posixpath.join(root, relpath)


def write_bytes(out: str, relpath: str, data: bytes) -> None:
    """Store DATA at OUT/RELPATH whole or not at all; parent directories are created."""
    fs, path = _path(out, relpath)
    if is_remote(out):
        with fs.open_output_stream(path) as stream:  # visible only once the upload completes
            stream.write(data)
    else:
        _write_local_atomic(path, data)


def _write_local_atomic(path: str, data: bytes) -> None:
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    _fsync_dir(folder)  # and the rename itself survives a crash


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(out: str) -> None:
    """Raise InputError when OUT cannot be a directory this process writes, without writing: its
    nearest existing ancestor must be a writable directory. Object storage is not probed (only a
    write would tell); its first write reports what the store says."""
    if is_remote(out):
        return
    path = resolve(out)[1]
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(f"output location {out!r}: {existing} is a file, not a directory; "
                         f"expected a directory (or a path where one can be created) or "
                         f"s3://bucket/prefix")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"output location {out!r}: directory {existing} is not writable by "
                         f"this user; expected a writable directory or s3://bucket/prefix")


def read_bytes(out: str, relpath: str) -> bytes:
    fs, path = _path(out, relpath)
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{out}/{relpath} does not exist") from None


def exists(out: str, relpath: str) -> bool:
    """True when OUT/RELPATH is a file."""
    fs, path = _path(out, relpath)
    return fs.get_file_info(path).type == pafs.FileType.File


def list_files(out: str, reldir: str, suffix: str = "") -> list[str]:
    """Relpaths (from OUT) of the files under OUT/RELDIR, recursively, sorted; [] if it is missing.
    Hidden names (a leading '.', e.g. an in-flight temp file) are skipped."""
    fs, folder = _path(out, reldir)
    root = resolve(out)[1]
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True, recursive=True))
    return sorted(
        posixpath.relpath(info.path, root) for info in infos
        if info.type == pafs.FileType.File and info.path.endswith(suffix)
        and not info.base_name.startswith(".")
    )


def delete(out: str, relpath: str) -> None:
    """Remove OUT/RELPATH; a missing file is fine."""
    fs, path = _path(out, relpath)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, file-system type) per line of /proc/mounts text; octal escapes decoded
    (the kernel writes a space in a mount point as \\040)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_OCTAL_ESCAPE.sub(lambda m: chr(int(m[1], 8)), fields[1]), fields[2]))
    return mounts


def mount_of(path: str, mounts: list[tuple[str, str]]) -> tuple[str, str]:
    """The mount (point, type) holding absolute PATH: the longest mount point that is PATH or one
    of its parent directories (a later mount over the same point wins, as in the kernel)."""
    best = ("", "unknown")
    for point, fstype in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best


def is_shared(fstype: str) -> bool:
    return fstype in SHARED_FILESYSTEMS or fstype.startswith(SHARED_PREFIXES)


def node_local_reason(out: str, mounts_text: str | None = None) -> str | None:
    """None when every node of a cluster can reach OUT (object storage or a shared file system);
    otherwise why not. MOUNTS_TEXT defaults to this node's /proc/mounts."""
    if is_remote(out):
        return None
    path = os.path.realpath(resolve(out)[1])  # a symlink into /mnt/efs counts as the NFS mount
    if mounts_text is None:
        try:
            with open(MOUNTS_FILE) as f:
                mounts_text = f.read()
        except OSError:
            return (f"{out} is a local path and {MOUNTS_FILE} cannot be read to tell whether it "
                    f"is shared; a multi-node cluster needs s3://bucket/prefix (or gs://...)")
    point, fstype = mount_of(path, parse_mounts(mounts_text))
    if is_shared(fstype):
        return None
    return (f"{out} is on the node-local disk ({fstype} at {point}); a multi-node cluster needs "
            f"s3://bucket/prefix (or gs://...) or a shared file system (NFS, EFS, Lustre, ...)")
