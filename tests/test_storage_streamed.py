"""A local snapshot's file written part by part as it is encoded (issue 8: a node must not
hold a whole snapshot in memory to write it): the same file format, durable and staged only
when finished, nothing left behind when it fails."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from raft3d.consensus.types import Entry, HardState, Snapshot, SnapshotMeta
from raft3d.storage import DurableStorage
from raft3d.storage.errors import StorageError
from raft3d.storage.snapshot_file import read_snapshot_file, verify_snapshot_file

META = SnapshotMeta(3, 1, ("solo",))


def parts() -> list[bytes]:
    return [bytes([n]) * (1000 + n) for n in range(50)]


def log_to(storage: DurableStorage, last: int) -> None:
    entries = [Entry(i, 1, b"x") for i in range(1, last + 1)]
    storage.persist(HardState(1, None, last), entries)


def test_a_streamed_snapshot_is_the_same_file_format_and_commits(tmp_path: Path) -> None:
    with DurableStorage(tmp_path) as storage:
        log_to(storage, 5)
        sink = storage.open_local_snapshot(META)
        for part in parts():
            sink.write(part)
        with pytest.raises(ValueError, match="no snapshot staged"):
            storage.commit_local_snapshot(META)  # not finished: nothing staged
        sink.finish()
        storage.commit_local_snapshot(META)
        latest = storage.latest_snapshot()
        assert latest == Snapshot(META, b"".join(parts()))
        [info] = storage.list_snapshots()
        assert verify_snapshot_file(info.path).size == info.path.stat().st_size
        assert read_snapshot_file(info.path)[1].data == b"".join(parts())
        assert storage.first_index() == 4
    with DurableStorage(tmp_path) as again:  # and it is what a restart finds
        state = again.load()
        assert state.snapshot == Snapshot(META, b"".join(parts()))


def test_an_aborted_or_failed_stream_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DurableStorage(tmp_path) as storage:
        log_to(storage, 5)
        sink = storage.open_local_snapshot(META)
        sink.write(b"half")
        sink.abort()
        failing = storage.open_local_snapshot(META)

        def full_disk(fd: int, data: bytes, offset: int) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "pwrite", full_disk)
        with pytest.raises(StorageError, match="stage_local_snapshot failed"):
            failing.write(b"more" * (1 << 19))  # past the first block: a write to the file
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and "snap" in p.name]
    assert leftovers == []
