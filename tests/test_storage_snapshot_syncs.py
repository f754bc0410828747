"""A big snapshot file goes to disk every few MiB as it is written, not all in the one
fsync at its end, which held the log's commits behind it (``SYNC_EVERY_BYTES``)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from raft3d.consensus.types import Snapshot, SnapshotMeta
from raft3d.storage.snapshot_file import SYNC_EVERY_BYTES, read_snapshot_file
from raft3d.storage.snapshot_store import SnapshotStore
from raft3d.storage.snapshot_stream import StreamedSnapshotFile, open_for

META = SnapshotMeta(7, 2, ("n1", "n2", "n3"))
SIZE = 3 * SYNC_EVERY_BYTES + 12_345


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of the file at each ``fdatasync`` while it is written."""
    seen: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        seen.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counted)
    return seen


def _data() -> bytes:
    return bytes(range(256)) * (SIZE // 256) + b"x" * (SIZE % 256)


def test_a_streamed_file_is_synced_as_it_grows(tmp_path: Path, syncs: list[int]) -> None:
    data = _data()
    path = tmp_path / "s.snap"
    fd = open_for(path)
    try:
        streamed = StreamedSnapshotFile(fd, META, 1.0)
        for start in range(0, len(data), 100_000):
            streamed.write(data[start : start + 100_000])
        streamed.finish()
    finally:
        os.close(fd)
    assert len(syncs) == 3
    assert all(after > before for before, after in itertools.pairwise(syncs))
    assert read_snapshot_file(path)[1].data == data  # the same file as before


def test_a_received_snapshot_is_synced_as_it_is_written(tmp_path: Path, syncs: list[int]) -> None:
    data = _data()
    info = SnapshotStore(tmp_path).write(Snapshot(META, data), 1.0)
    path, size = info.path, info.size
    assert len(syncs) == 3
    assert path.stat().st_size == size
    assert read_snapshot_file(path)[1].data == data


def test_a_small_file_is_left_to_the_callers_fsync(tmp_path: Path, syncs: list[int]) -> None:
    SnapshotStore(tmp_path).write(Snapshot(META, b"state"), 1.0)
    assert syncs == []
