"""A local snapshot's file is written past the page cache (``O_DIRECT``) where the file
system allows it, summed as it is written and never read back (issue 8: writing a 117 MB
file through the page cache cost the node 80-370 ms of CPU per snapshot); a file system
that refuses direct writes gets the same file through the page cache."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft3d.consensus.types import Entry, HardState, Snapshot, SnapshotMeta
from raft3d.storage import DurableStorage, snapshot_store
from raft3d.storage import snapshot_stream as stream
from raft3d.storage.snapshot_file import read_snapshot_file, verify_snapshot_file
from raft3d.storage.snapshot_stream import BLOCK, StreamedSnapshotFile, is_direct, open_for

META = SnapshotMeta(3, 1, ("n1", "n2", "n3"))


def direct_supported(directory: Path) -> bool:
    """Whether ``directory``'s file system takes O_DIRECT (ext4 does; tmpfs does not)."""
    probe = directory / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
    except OSError as exc:
        assert exc.errno == errno.EINVAL
        return False
    os.close(fd)
    probe.unlink()
    return True


def stream_file(path: Path, parts: list[bytes]) -> int:
    fd = open_for(path)
    try:
        streamed = StreamedSnapshotFile(fd, META, 1.5)
        for part in parts:
            streamed.write(part)
        return streamed.finish()
    finally:
        os.close(fd)


def test_a_local_snapshot_is_written_write_only_and_past_the_page_cache(
    tmp_path: Path,
) -> None:
    with DurableStorage(tmp_path) as storage:
        entries = [Entry(i, 1, b"x") for i in range(1, 6)]
        storage.persist(HardState(1, None, 5), entries)
        sink = storage.open_local_snapshot(META)
        fd = sink._fd
        # Write-only: the checksum is summed as the data goes by; nothing is read back.
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
        assert is_direct(fd) == direct_supported(tmp_path)
        parts = [bytes([n % 251]) * 70_001 for n in range(40)]  # 2.8 MB: three blocks
        for part in parts:
            sink.write(part)
        sink.finish()
        storage.commit_local_snapshot(META)
        [info] = storage.list_snapshots()
        assert read_snapshot_file(info.path)[1].data == b"".join(parts)


def test_a_received_snapshot_is_written_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[int, bool]] = []

    def recording(path: Path, mode: int = 0o600) -> int:
        fd = stream.open_for(path, mode)
        opened.append((fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE, is_direct(fd)))
        return fd

    monkeypatch.setattr(snapshot_store, "open_for", recording)
    data = bytes(range(256)) * 9000  # 2.3 MB: more than one part and block
    with DurableStorage(tmp_path) as storage:
        storage.persist(HardState(2, None, 9), [], Snapshot(SnapshotMeta(9, 2, META.voters), data))
        [info] = storage.list_snapshots()
        assert read_snapshot_file(info.path)[1].data == data
    assert opened == [(os.O_WRONLY, direct_supported(tmp_path))]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(
        st.one_of(
            st.integers(0, 5000),
            st.sampled_from([BLOCK - 163, BLOCK - 162, BLOCK, BLOCK + 1, 2 * BLOCK - 1]),
        ),
        max_size=6,
    ),
    seed=st.integers(0, 255),
)
def test_any_parts_make_a_file_of_exactly_their_data(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], seed: int
) -> None:
    path = tmp_path_factory.mktemp("s") / "s.snap"
    parts = [
        bytes((seed + i + k) % 256 for k in range(min(n, 300))) * (n // 300 + 1)
        for i, n in enumerate(sizes)
    ]
    parts = [p[:n] for p, n in zip(parts, sizes, strict=True)]
    size = stream_file(path, parts)
    assert path.stat().st_size == size
    info, snapshot = read_snapshot_file(path)
    assert snapshot.data == b"".join(parts)
    assert (snapshot.meta, info.size, info.created_at) == (META, size, 1.5)


def test_a_file_system_without_direct_io_gets_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: Path, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    fd = open_for(tmp_path / "probe")
    assert not is_direct(fd)
    os.close(fd)
    parts = [b"a" * BLOCK, b"b" * 10]
    stream_file(tmp_path / "s.snap", parts)
    assert read_snapshot_file(tmp_path / "s.snap")[1].data == b"".join(parts)


def test_a_refused_direct_write_goes_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not direct_supported(tmp_path):
        pytest.fail(f"{tmp_path} takes no O_DIRECT: this test needs a file system that does")
    real_pwrite = os.pwrite
    refused: list[int] = []

    def picky(fd: int, data: memoryview, offset: int) -> int:
        if is_direct(fd):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", picky)
    parts = [b"c" * (3 * BLOCK + 17)]
    size = stream_file(tmp_path / "s.snap", parts)
    assert refused == [BLOCK]  # once; every write after it went buffered
    assert verify_snapshot_file(tmp_path / "s.snap").size == size
    assert read_snapshot_file(tmp_path / "s.snap")[1].data == parts[0]


def test_other_write_errors_are_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pwrite", broken)
    with pytest.raises(OSError, match="Input/output"):
        stream_file(tmp_path / "s.snap", [b"d" * (BLOCK + 1)])
