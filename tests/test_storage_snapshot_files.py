"""Unit tests of ``DurableStorage``'s snapshot files: their format, what invalidates one, the
leftovers of a crash, and a damaged file skipped or reported as corruption."""

from __future__ import annotations

import hashlib
import json
import struct
import time
import zlib
from pathlib import Path

import pytest

from raft3d.consensus.types import HardState, Snapshot
from raft3d.storage import DurableStorage, SnapshotInfo, StorageCorruptError
from raft3d.storage.snapshot_file import (
    InvalidSnapshotFile,
    SnapshotFileData,
    read_snapshot_file,
    verify_snapshot_file,
)
from raft3d.storage.snapshot_store import SnapshotStore
from tests.support.durable import (
    VOTERS,
    flip_byte,
    make_entries,
    make_snapshot,
    query,
    reopen_and_load,
    snapshot_files,
)
from tests.support.storage_model import StorageModel

# Snapshot files: format, validity, crash leftovers ---------------------------------------


def test_snapshot_file_header_carries_its_metadata(storage: DurableStorage) -> None:
    storage.persist(None, make_entries(1, 3, 2))
    storage.save_local_snapshot(make_snapshot(3, 2, b"payload"))
    path = storage.list_snapshots()[0].path
    raw = path.read_bytes()

    magic, version, header_len = struct.unpack_from("<8sHI", raw)
    assert (magic, version) == (b"R3DSNAP\x00", 2)
    header = json.loads(raw[14 : 14 + header_len])
    assert header["index"] == 3
    assert header["term"] == 2
    assert header["voters"] == list(VOTERS)
    assert header["data_len"] == len(b"payload")
    assert isinstance(header["created_at"], float)
    (checksum,) = struct.unpack_from("<I", raw, 14 + header_len)
    data = raw[14 + header_len + 4 :]
    assert data == b"payload"
    assert zlib.crc32(raw[: 14 + header_len], zlib.crc32(data)) == checksum


def _version_1_file(path: Path, snapshot: Snapshot, created_at: float) -> None:
    """A snapshot file as versions before 2 wrote it: SHA-256 over the header, then the data."""
    header = json.dumps(
        {
            "index": snapshot.meta.index,
            "term": snapshot.meta.term,
            "voters": list(snapshot.meta.voters),
            "created_at": created_at,
            "data_len": len(snapshot.data),
        }
    ).encode()
    prefix = struct.pack("<8sHI", b"R3DSNAP\x00", 1, len(header)) + header
    path.write_bytes(prefix + hashlib.sha256(prefix + snapshot.data).digest() + snapshot.data)


def test_a_version_1_file_still_reads_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    snapshot = make_snapshot(9, 4, bytes(range(256)) * 4)
    path = tmp_path / "v1.snap"
    _version_1_file(path, snapshot, 1_700_000_000.5)
    info, read = read_snapshot_file(path)
    assert (read, info.index, info.term, info.size) == (snapshot, 9, 4, path.stat().st_size)
    assert verify_snapshot_file(path) == info
    assert SnapshotFileData(path)[0:10] == snapshot.data[:10]
    flip_byte(path, path.stat().st_size - 3)
    with pytest.raises(InvalidSnapshotFile, match="checksum"):
        verify_snapshot_file(path)


def test_any_damaged_byte_or_truncation_invalidates_a_snapshot_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps")
    info = store.write(make_snapshot(9, 4, bytes(range(256)) * 4), 1_700_000_000.5)
    intact = info.path.read_bytes()
    assert read_snapshot_file(info.path) == (info, make_snapshot(9, 4, bytes(range(256)) * 4))

    for offset in range(0, len(intact), 7):
        flip_byte(info.path, offset)
        with pytest.raises(InvalidSnapshotFile):
            read_snapshot_file(info.path)
        info.path.write_bytes(intact)
    for length in (0, 5, 20, len(intact) - 1):
        info.path.write_bytes(intact[:length])
        with pytest.raises(InvalidSnapshotFile):
            read_snapshot_file(info.path)
    info.path.write_bytes(intact + b"\x00")
    with pytest.raises(InvalidSnapshotFile, match="bytes"):
        read_snapshot_file(info.path)


def test_a_temp_file_left_by_a_crash_is_ignored_and_removed(
    storage: DurableStorage, data_dir: Path
) -> None:
    storage.persist(None, make_entries(1, 30, 1))
    storage.save_local_snapshot(make_snapshot(10, 1))
    storage.close()
    # A complete, valid, newer snapshot that never got its final name.
    leftover = SnapshotStore(data_dir / "snapshots").write(make_snapshot(25, 1), time.time())
    temp = leftover.path.with_name(f".{leftover.path.name}.4242.deadbeef.tmp")
    leftover.path.rename(temp)
    partial = data_dir / "snapshots" / ".snapshot-x.99.cafe.tmp"
    partial.write_bytes(b"R3DSNAP\x00\x01")

    recovered = reopen_and_load(data_dir)
    assert recovered.snapshot == make_snapshot(10, 1)
    assert recovered.entries == make_entries(11, 30, 1)
    assert not temp.exists()
    assert not partial.exists()


def test_a_newer_snapshot_file_never_committed_is_ignored(
    storage: DurableStorage, data_dir: Path
) -> None:
    """A crash between writing the snapshot file and the transaction that compacts the log."""
    storage.persist(None, make_entries(1, 30, 1))
    storage.save_local_snapshot(make_snapshot(10, 1))
    storage.close()
    orphan = SnapshotStore(data_dir / "snapshots").write(make_snapshot(20, 1), time.time())

    with DurableStorage(data_dir) as reopened:
        recovered = StorageModel.read_from(reopened)
        assert recovered.snapshot == make_snapshot(10, 1)
        assert recovered.entries == make_entries(11, 30, 1)
        assert [s.index for s in reopened.list_snapshots()] == [10]
    assert not orphan.path.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_older_snapshot_is_skipped(
    storage: DurableStorage, data_dir: Path, damage: str
) -> None:
    storage.persist(None, make_entries(1, 30, 1))
    storage.save_local_snapshot(make_snapshot(10, 1))
    storage.save_local_snapshot(make_snapshot(20, 1))
    older = storage.list_snapshots()[1]
    storage.close()
    _damage(older, damage)

    with DurableStorage(data_dir) as reopened:
        assert [s.index for s in reopened.list_snapshots()] == [20]
        assert reopened.load().snapshot == make_snapshot(20, 1)
    assert not older.path.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_current_snapshot_is_reported_as_corruption(
    storage: DurableStorage, data_dir: Path, damage: str
) -> None:
    """The log was compacted to it: falling back to an older one would lose committed entries."""
    storage.persist(HardState(1, None, 20), make_entries(1, 30, 1))
    storage.save_local_snapshot(make_snapshot(10, 1))
    storage.save_local_snapshot(make_snapshot(20, 1))
    current = storage.list_snapshots()[0]
    storage.close()
    _damage(current, damage)
    files_before = snapshot_files(data_dir)

    with DurableStorage(data_dir) as reopened:
        with pytest.raises(StorageCorruptError, match="compacted through index 20"):
            reopened.load()
        with pytest.raises(StorageCorruptError):
            reopened.persist(None, make_entries(31, 31, 1))
        assert reopened.last_index() == 30  # the read API still answers
    assert snapshot_files(data_dir) == files_before  # evidence left in place


def _damage(info: SnapshotInfo, how: str) -> None:
    if how == "flip":
        flip_byte(info.path, info.size - 1)
    elif how == "truncate":
        info.path.write_bytes(info.path.read_bytes()[: info.size // 2])
    else:
        info.path.unlink()


def test_a_gap_in_the_stored_log_is_reported(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(None, make_entries(1, 10, 1))
    storage.close()
    query(data_dir, "DELETE FROM log_entries WHERE idx = 6")
    with (
        DurableStorage(data_dir) as reopened,
        pytest.raises(StorageCorruptError, match="not contiguous"),
    ):
        reopened.load()


def test_a_log_that_does_not_start_after_the_snapshot_is_reported(
    storage: DurableStorage, data_dir: Path
) -> None:
    storage.persist(None, make_entries(1, 10, 1))
    storage.save_local_snapshot(make_snapshot(4, 1))
    storage.close()
    query(data_dir, "DELETE FROM log_entries WHERE idx = 5")
    with DurableStorage(data_dir) as reopened, pytest.raises(StorageCorruptError, match="after"):
        reopened.load()
