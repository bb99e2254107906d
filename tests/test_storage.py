"""raysweep.store.storage on a local directory and on a real S3 server (moto, see
tests/s3_server.py)."""

import os
import stat
import threading
import time

import pytest

from raysweep.errors import InputError
from raysweep.store import storage

pytest_plugins = ["s3_server"]  # fixtures aws_endpoint, s3_bucket, s3_out (tests/s3_server.py)


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path):
    """An empty output location of each kind."""
    if request.param == "local":
        return str(tmp_path / "runs" / "x")
    return request.getfixturevalue("s3_out")


def test_round_trip_and_overwrite(out):
    storage.write_bytes(out, "results/a.parquet", b"first")
    assert storage.read_bytes(out, "results/a.parquet") == b"first"
    storage.write_bytes(out, "results/a.parquet", b"second, longer")
    assert storage.read_bytes(out, "results/a.parquet") == b"second, longer"


def test_empty_and_binary_payloads(out):
    storage.write_bytes(out, "empty", b"")
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
    storage.write_bytes(out, "deep/er/blob.bin", blob)
    assert storage.read_bytes(out, "empty") == b""
    assert storage.read_bytes(out, "deep/er/blob.bin") == blob


def test_list_is_recursive_sorted_filtered_and_relative_to_out(out):
    for rel in ["results/b.parquet", "results/a.parquet", "results/sub/c.parquet",
                "results/notes.txt", "checkpoints/a.pt"]:
        storage.write_bytes(out, rel, b"x")
    assert storage.list_files(out, "results", ".parquet") == [
        "results/a.parquet", "results/b.parquet", "results/sub/c.parquet"]
    assert storage.list_files(out, "results") == [
        "results/a.parquet", "results/b.parquet", "results/notes.txt", "results/sub/c.parquet"]
    assert storage.list_files(out, "missing") == []
    # what list_files returns is what read_bytes takes
    assert all(storage.read_bytes(out, rel) == b"x" for rel in storage.list_files(out, "results"))


def test_exists_and_delete(out):
    assert not storage.exists(out, "attempts/t1")
    storage.write_bytes(out, "attempts/t1", b"1")
    assert storage.exists(out, "attempts/t1")
    assert not storage.exists(out, "attempts")  # a directory is not a file
    storage.delete(out, "attempts/t1")
    assert not storage.exists(out, "attempts/t1")
    storage.delete(out, "attempts/t1")  # already gone: fine
    storage.delete(out, "never/was")


def test_missing_file_error_names_the_location(out):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        storage.read_bytes(out, "results/nope.bin")


@pytest.mark.parametrize("relpath", ["", "/etc/passwd", "../escape", "a/../../b"])
def test_relpath_must_stay_below_out(relpath, tmp_path):
    with pytest.raises(ValueError, match="relative"):
        storage.write_bytes(str(tmp_path), relpath, b"x")


def test_unknown_scheme_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"'hdfs'.*s3://"):
        storage.is_remote("hdfs://namenode/runs")


@pytest.mark.parametrize("scheme_", storage.SCHEMES)
def test_is_remote_for_every_scheme(scheme_):
    assert storage.is_remote(f"{scheme_}://bucket/runs") == (scheme_ in storage.OBJECT_STORE_SCHEMES)
    assert not storage.is_remote("runs/x") and not storage.is_remote("/abs/runs")


EXAMPLE_URIS = {  # s3 is exercised against the moto server above
    "gs": "gs://bucket/runs/x", "gcs": "gcs://bucket/runs/x",
    "abfs": "abfs://container@account.dfs.core.windows.net/runs/x",
    "abfss": "abfss://container@account.dfs.core.windows.net/runs/x",
}


@pytest.mark.parametrize("scheme_", [s for s in storage.OBJECT_STORE_SCHEMES if s != "s3"])
def test_every_other_object_store_resolves_to_a_remote_file_system(scheme_):
    fs, root = storage.resolve(EXAMPLE_URIS[scheme_])
    assert fs.type_name not in ("local", "") and root.endswith("/runs/x")


def test_file_uri_is_the_local_disk(tmp_path):
    storage.write_bytes(f"file://{tmp_path}", "r/a.bin", b"via uri")
    assert (tmp_path / "r" / "a.bin").read_bytes() == b"via uri"
    assert storage.read_bytes(str(tmp_path), "r/a.bin") == b"via uri"


def test_resolve_is_memoised_and_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs, root = storage.resolve("runs/memo")
    assert root == str(tmp_path / "runs" / "memo")
    assert storage.resolve("runs/memo")[0] is fs
    assert storage.absolute("runs/memo") == root
    assert storage.absolute("s3://b/runs") == "s3://b/runs"


def test_aws_endpoint_url_is_honoured(s3_out):
    """pyarrow reaches the moto server only through AWS_ENDPOINT_URL: the object is really there."""
    import boto3

    storage.write_bytes(s3_out, "results/t.parquet", b"on the server")
    bucket, prefix = s3_out.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/results/t.parquet")["Body"].read()
    assert body == b"on the server"


# -- atomic writes on a file system ------------------------------------------------------------

def test_atomic_write_leaves_only_the_target(tmp_path):
    storage.write_bytes(str(tmp_path), "results/a.parquet", b"x" * 100_000)
    assert os.listdir(tmp_path / "results") == ["a.parquet"]


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_bytes(tmp_path):
    storage.write_bytes(str(tmp_path), "r/a.bin", b"old")
    with pytest.raises(TypeError):
        storage.write_bytes(str(tmp_path), "r/a.bin", "not bytes")  # fails inside the write
    assert os.listdir(tmp_path / "r") == ["a.bin"]
    assert storage.read_bytes(str(tmp_path), "r/a.bin") == b"old"


def test_temp_files_are_never_listed(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / f".a.parquet.123{storage.TEMP_SUFFIX}").write_bytes(b"half")
    storage.write_bytes(str(tmp_path), "results/b.parquet", b"whole")
    assert storage.list_files(str(tmp_path), "results") == ["results/b.parquet"]


SIZE = 4 * 1024 * 1024  # 4 MiB: many write() calls for a naive writer, so partial reads are likely


def _naive_write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:  # truncate, then fill in 64 KiB pieces: readers can see any prefix
        for i in range(0, len(data), 65536):
            f.write(data[i:i + 65536])
            f.flush()


def _torn_reads(write, target: str, seconds: float) -> tuple[int, int]:
    """Rewrite TARGET with all-'A' / all-'B' payloads while another thread reads it; returns
    (reads that were partial or mixed, reads in total)."""
    payloads = [b"A" * SIZE, b"B" * SIZE]
    write(payloads[0])
    stop, torn, reads = threading.Event(), [0], [0]

    def reader():
        while not stop.is_set():
            with open(target, "rb") as f:
                data = f.read()
            reads[0] += 1
            torn[0] += data not in payloads

    thread = threading.Thread(target=reader)
    thread.start()
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        i += 1
        write(payloads[i % 2])
    stop.set()
    thread.join()
    return torn[0], reads[0]


def test_a_reader_never_sees_a_partial_file(tmp_path):
    target = str(tmp_path / "results" / "big.bin")
    torn, reads = _torn_reads(lambda d: storage.write_bytes(str(tmp_path), "results/big.bin", d),
                              target, seconds=1.5)
    assert reads > 10 and torn == 0
    assert os.listdir(tmp_path / "results") == ["big.bin"]


def test_the_reader_loop_does_catch_a_non_atomic_writer(tmp_path):
    """Control for the test above: the same loop against a plain open-and-write does see torn
    files, so a torn == 0 there means something."""
    target = str(tmp_path / "big.bin")
    torn, reads = _torn_reads(lambda d: _naive_write(target, d), target, seconds=1.5)
    assert torn > 0, f"no torn read in {reads} reads"


# -- node-local or shared ----------------------------------------------------------------------

MOUNTS = """\
/dev/nvme0n1p1 / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
fs-0123.efs.us-west-2.amazonaws.com:/ /mnt/efs nfs4 rw,vers=4.1 0 0
/dev/nvme1n1 /mnt/efs/scratch xfs rw 0 0
s3fs /data/bucket fuse.s3fs rw,nosuid,nodev 0 0
10.0.0.5@tcp:/fsx /fsx lustre rw 0 0
server:/export /mnt/my\\040share nfs rw 0 0
/dev/sdb /mnt/efsx ext4 rw 0 0
"""


@pytest.mark.parametrize("path, point, fstype", [
    ("/home/me/runs/x", "/", "ext4"),
    ("/tmp/runs", "/tmp", "tmpfs"),
    ("/mnt/efs", "/mnt/efs", "nfs4"),
    ("/mnt/efs/runs/x", "/mnt/efs", "nfs4"),
    ("/mnt/efs/scratch/runs", "/mnt/efs/scratch", "xfs"),     # a local disk mounted inside NFS
    ("/mnt/efsx/runs", "/mnt/efsx", "ext4"),                  # a name prefix is not a parent
    ("/data/bucket/runs", "/data/bucket", "fuse.s3fs"),
    ("/fsx/runs", "/fsx", "lustre"),
    ("/mnt/my share/runs", "/mnt/my share", "nfs"),           # \040 decoded
])
def test_mount_of_picks_the_longest_parent_mount(path, point, fstype):
    assert storage.mount_of(path, storage.parse_mounts(MOUNTS)) == (point, fstype)


def test_a_later_mount_over_the_same_point_wins():
    text = "/dev/sda1 /data ext4 rw 0 0\nnas:/vol /data nfs rw 0 0\n"
    assert storage.mount_of("/data/runs", storage.parse_mounts(text)) == ("/data", "nfs")


@pytest.mark.parametrize("fstype", storage.SHARED_FILESYSTEMS + ("fuse.gcsfuse", "fuse.juicefs"))
def test_every_shared_filesystem_is_accepted(fstype):
    text = f"/dev/sda1 / ext4 rw 0 0\nserver:/x /shared {fstype} rw 0 0\n"
    assert storage.node_local_reason("/shared/runs/x", text) is None


@pytest.mark.parametrize("path, fstype", [("/mnt/efs/scratch/r", "xfs"), ("/tmp/r", "tmpfs"),
                                          ("/mnt/efsx/r", "ext4")])
def test_node_local_paths_are_refused_with_path_and_type(path, fstype):
    reason = storage.node_local_reason(path, MOUNTS)
    assert reason is not None and path in reason and f"({fstype} at" in reason
    assert "s3://" in reason


def test_node_local_reason_on_this_machine(tmp_path):
    with open(storage.MOUNTS_FILE) as f:
        _, fstype = storage.mount_of(os.path.realpath(tmp_path), storage.parse_mounts(f.read()))
    if storage.is_shared(fstype):
        pytest.skip(f"{tmp_path} is on a shared file system ({fstype}) here")
    reason = storage.node_local_reason(str(tmp_path))
    assert reason is not None and str(tmp_path) in reason and fstype in reason


def test_object_storage_is_never_node_local(s3_out):
    assert storage.node_local_reason(s3_out) is None
    assert storage.node_local_reason("gs://bucket/runs") is None


def test_local_bytes_are_flushed_and_synced_before_the_rename_and_the_rename_after(tmp_path,
                                                                                  monkeypatch):
    """What a crash would test (the bytes are on disk before the name points at them, and the
    rename itself is): the real os.fsync runs; a spy notes what each call saw."""
    target = tmp_path / "results" / "a.parquet"
    seen, real_fsync = [], os.fsync

    def spy(fd):
        st = os.fstat(fd)
        seen.append(("folder" if stat.S_ISDIR(st.st_mode) else "file", st.st_size,
                     target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", spy)
    storage.write_bytes(str(tmp_path), "results/a.parquet", b"x" * 100)   # inside one buffer
    assert [s[::2] for s in seen] == [("file", False), ("folder", True)]
    assert seen[0][1] == 100                     # flushed from Python's buffer before fsync


def test_check_writable_accepts_what_can_be_created_and_refuses_what_cannot(tmp_path):
    storage.check_writable(str(tmp_path / "new" / "deeper"))      # creatable: fine
    storage.check_writable(str(tmp_path))                          # exists: fine
    storage.check_writable("s3://bucket/prefix")                   # not probed
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "out" / "deeper"):
        with pytest.raises(InputError, match=f"{tmp_path / 'afile'} is a file, not a directory"):
            storage.check_writable(str(out))
    assert not (tmp_path / "new").exists()                         # the check wrote nothing
    with pytest.raises(InputError, match="scheme 'hdfs'"):
        storage.check_writable("hdfs://nn/x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any directory")
def test_check_writable_refuses_a_read_only_directory(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(InputError, match=f"directory {folder} is not writable"):
        storage.check_writable(str(folder / "out"))
