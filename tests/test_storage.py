"""Unit tests of ``raft3d.storage.DurableStorage``: round trips, truncation, compaction,
snapshots from a leader, recovery, reads and lifecycle (snapshot files and the model-based
test have files of their own)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from raft3d.consensus.types import Entry, EntryType, HardState, Snapshot
from raft3d.storage import DurableStorage, StorageError
from tests.support.durable import (
    make_entries,
    make_snapshot,
    query,
    reopen_and_load,
    snapshot_files,
)
from tests.support.storage_model import StorageModel

# Round trips -----------------------------------------------------------------------------


def test_a_fresh_directory_loads_an_empty_state(data_dir: Path) -> None:
    with DurableStorage(data_dir) as storage:
        state = storage.load()
        assert state.hard_state == HardState()
        assert state.snapshot is None
        assert state.entries == []
        assert (storage.first_index(), storage.last_index()) == (1, 0)
        assert storage.list_snapshots() == []
        assert storage.latest_snapshot() is None
        assert storage.read_entries(0, 10) == []
    assert (data_dir / "raft.db").is_file()
    assert (data_dir / "snapshots").is_dir()


def test_entries_and_hard_state_survive_a_reopen(storage: DurableStorage, data_dir: Path) -> None:
    written = [
        Entry(1, 1, b"", EntryType.NOOP),
        Entry(2, 1, b"\x00binary\n\xff"),
        Entry(3, 2, b"x" * 70_000),
    ]
    storage.persist(HardState(2, "n2", 2), written)
    storage.close()

    with DurableStorage(data_dir) as reopened:
        state = reopened.load()
        assert state.entries == written
        assert state.entries[0].type is EntryType.NOOP
        assert state.hard_state == HardState(2, "n2", 2)
        assert (reopened.first_index(), reopened.last_index()) == (1, 3)


def test_appends_across_calls_form_one_log(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(None, make_entries(1, 5, 1))
    storage.persist(None, make_entries(6, 6, 1))
    storage.persist(None, make_entries(7, 70, 2))
    storage.close()
    assert reopen_and_load(data_dir).entries == make_entries(1, 6, 1) + make_entries(7, 70, 2)


def test_hard_state_is_replaced_only_when_given(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(HardState(1, "n1", 0), [])
    storage.persist(None, make_entries(1, 2, 1))
    assert storage.load().hard_state == HardState(1, "n1", 0)
    storage.persist(HardState(3, None, 2), [])
    storage.close()
    assert reopen_and_load(data_dir).hard_state == HardState(3, None, 2)


def test_an_empty_persist_writes_nothing(storage: DurableStorage) -> None:
    storage.persist(None, [])
    assert storage.load().hard_state == HardState()
    assert storage.last_index() == 0


# Suffix truncation -----------------------------------------------------------------------


def test_entries_replace_the_conflicting_suffix(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(HardState(1, "n1", 3), make_entries(1, 10, 1))
    storage.persist(HardState(2, "n2", 3), make_entries(6, 7, 2, b"new"))

    assert storage.last_index() == 7
    expected = make_entries(1, 5, 1) + make_entries(6, 7, 2, b"new")
    assert storage.load().entries == expected
    assert storage.read_entries(2, 2) == expected[2:4]
    assert storage.read_entries(6, 5) == [expected[6]]
    storage.close()
    assert reopen_and_load(data_dir).entries == expected


def test_rewriting_the_whole_log_from_index_one(storage: DurableStorage) -> None:
    storage.persist(None, make_entries(1, 4, 1))
    storage.persist(None, make_entries(1, 2, 5))
    assert storage.load().entries == make_entries(1, 2, 5)
    assert storage.last_index() == 2


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        (make_entries(7, 8, 1), "gap"),
        ([Entry(4, 1), Entry(6, 1)], "not contiguous"),
        ([Entry(4, 1), Entry(4, 1)], "not contiguous"),
    ],
)
def test_entries_that_would_break_the_log_are_refused(
    storage: DurableStorage, batch: list[Entry], reason: str
) -> None:
    storage.persist(HardState(1, None, 0), make_entries(1, 5, 1))
    with pytest.raises(ValueError, match=reason):
        storage.persist(HardState(9, None, 0), batch)
    state = storage.load()
    assert state.entries == make_entries(1, 5, 1)
    assert state.hard_state == HardState(1, None, 0)  # nothing of the refused call was written


# Local snapshots and prefix deletion -----------------------------------------------------


def test_local_snapshot_compacts_the_log(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(HardState(2, "n1", 8), make_entries(1, 5, 1) + make_entries(6, 10, 2))
    storage.save_local_snapshot(make_snapshot(6, 2))

    assert (storage.first_index(), storage.last_index()) == (7, 10)
    assert [e.index for e in storage.read_entries(0, 100)] == [7, 8, 9, 10]
    assert storage.latest_snapshot() == make_snapshot(6, 2)
    storage.close()

    recovered = reopen_and_load(data_dir)
    assert recovered.snapshot == make_snapshot(6, 2)
    assert recovered.entries == make_entries(7, 10, 2)
    assert recovered.hard_state == HardState(2, "n1", 8)
    # Entries at or below the snapshot index are gone from the database too.
    assert query(data_dir, "SELECT MIN(idx) FROM log_entries") == (7,)


def test_local_snapshot_of_the_whole_log(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(None, make_entries(1, 4, 1))
    storage.save_local_snapshot(make_snapshot(4, 1))
    assert (storage.first_index(), storage.last_index()) == (5, 4)
    storage.persist(None, make_entries(5, 6, 1))
    storage.close()
    recovered = reopen_and_load(data_dir)
    assert recovered.base_index == 4
    assert recovered.entries == make_entries(5, 6, 1)


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        (make_snapshot(11, 1), "beyond the last log index"),
        (make_snapshot(5, 2), "differs from the log's term"),
        (make_snapshot(0, 0), "at least one entry"),
    ],
)
def test_invalid_local_snapshots_are_refused(
    storage: DurableStorage, data_dir: Path, snapshot: Snapshot, reason: str
) -> None:
    storage.persist(None, make_entries(1, 10, 1))
    with pytest.raises(ValueError, match=reason):
        storage.save_local_snapshot(snapshot)
    assert storage.list_snapshots() == []
    assert snapshot_files(data_dir) == []
    assert storage.load().entries == make_entries(1, 10, 1)


def test_entries_at_or_below_the_snapshot_are_refused(storage: DurableStorage) -> None:
    storage.persist(None, make_entries(1, 10, 1))
    storage.save_local_snapshot(make_snapshot(8, 1))
    with pytest.raises(ValueError, match="at or below the snapshot index"):
        storage.persist(None, make_entries(8, 12, 2))
    with pytest.raises(ValueError, match="older than the stored snapshot"):
        storage.save_local_snapshot(make_snapshot(5, 1))
    assert storage.load().entries == make_entries(9, 10, 1)


def test_snapshots_keep_prunes_old_files(data_dir: Path) -> None:
    with DurableStorage(data_dir, snapshots_keep=2) as storage:
        storage.persist(None, make_entries(1, 40, 1))
        before = time.time()
        for index in (10, 20, 30, 40):
            storage.save_local_snapshot(make_snapshot(index, 1, b"s" * index))
        after = time.time()

        listed = storage.list_snapshots()
        assert [(s.index, s.term) for s in listed] == [(40, 1), (30, 1)]
        storage.flush_removals()  # the dropped files go on a thread of their own
        assert [s.path.name for s in listed] == sorted(snapshot_files(data_dir), reverse=True)
        for info in listed:
            assert info.size == info.path.stat().st_size
            assert before <= info.created_at <= after
        assert listed[0].created_at >= listed[1].created_at

    with DurableStorage(data_dir, snapshots_keep=1) as reopened:
        assert [s.index for s in reopened.list_snapshots()] == [40]
        assert len(snapshot_files(data_dir)) == 1
        assert reopened.load().snapshot == make_snapshot(40, 1, b"s" * 40)


def test_snapshots_keep_must_be_positive(data_dir: Path) -> None:
    with pytest.raises(ValueError):
        DurableStorage(data_dir, snapshots_keep=0)


# Snapshots received from a leader --------------------------------------------------------


def test_received_snapshot_replaces_the_whole_log(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(HardState(1, "n1", 5), make_entries(1, 10, 1))
    received = make_snapshot(20, 3)
    storage.persist(HardState(3, None, 20), make_entries(21, 22, 3), snapshot=received)

    assert (storage.first_index(), storage.last_index()) == (21, 22)
    assert storage.latest_snapshot() == received
    storage.close()
    recovered = reopen_and_load(data_dir)
    assert recovered.snapshot == received
    assert recovered.entries == make_entries(21, 22, 3)
    assert recovered.hard_state == HardState(3, None, 20)
    assert query(data_dir, "SELECT MIN(idx), COUNT(*) FROM log_entries") == (21, 2)


def test_received_snapshot_inside_the_log_still_drops_all_of_it(
    storage: DurableStorage, data_dir: Path
) -> None:
    storage.persist(None, make_entries(1, 10, 1))
    storage.persist(HardState(2, None, 5), [], snapshot=make_snapshot(5, 1))
    assert (storage.first_index(), storage.last_index()) == (6, 5)
    storage.close()
    recovered = reopen_and_load(data_dir)
    assert (recovered.base_index, recovered.entries) == (5, [])


def test_received_snapshot_must_be_followed_without_gap(storage: DurableStorage) -> None:
    storage.persist(None, make_entries(1, 3, 1))
    with pytest.raises(ValueError, match="gap"):
        storage.persist(None, make_entries(22, 23, 3), snapshot=make_snapshot(20, 3))
    assert storage.latest_snapshot() is None
    assert storage.list_snapshots() == []


def test_received_snapshot_older_than_the_stored_one_is_refused(storage: DurableStorage) -> None:
    storage.persist(None, make_entries(1, 10, 1))
    storage.save_local_snapshot(make_snapshot(8, 1))
    with pytest.raises(ValueError, match="older than the stored snapshot"):
        storage.persist(None, [], snapshot=make_snapshot(7, 1))
    with pytest.raises(ValueError, match="has term"):
        storage.persist(None, [], snapshot=make_snapshot(8, 4))
    assert storage.latest_snapshot() == make_snapshot(8, 1)


# Recovery --------------------------------------------------------------------------------


def test_recovery_is_the_newest_snapshot_plus_the_log_after_it(data_dir: Path) -> None:
    model = StorageModel()
    with DurableStorage(data_dir, snapshots_keep=3) as storage:
        for step in range(6):
            first = model.last_index + 1
            batch = make_entries(first, first + 9, step + 1)
            hard = HardState(step + 1, "n1", first)
            for target in (storage, model):
                target.persist(hard, batch)
            if step % 2 == 1:
                snap = make_snapshot(first + 4, step + 1)
                storage.save_local_snapshot(snap)
                model.save_local_snapshot(snap)
    recovered = reopen_and_load(data_dir)
    assert recovered.snapshot is not None and recovered.snapshot.meta.index == 55
    assert recovered.digest() == model.digest()
    assert recovered.entries == model.entries


# Event log reads -------------------------------------------------------------------------


def test_read_entries_pages_through_the_log(storage: DurableStorage) -> None:
    storage.persist(None, make_entries(1, 20, 1))

    assert storage.read_entries(0, 3) == make_entries(1, 3, 1)
    assert storage.read_entries(3, 4) == make_entries(4, 7, 1)
    assert storage.read_entries(20, 10) == []
    assert storage.read_entries(18, 0) == []
    assert [e.index for e in storage.read_entries(18, 100)] == [19, 20]
    with pytest.raises(ValueError):
        storage.read_entries(0, -1)


def test_read_entries_after_compaction_starts_at_first_index(storage: DurableStorage) -> None:
    storage.persist(None, make_entries(1, 20, 1))
    storage.save_local_snapshot(make_snapshot(11, 1))
    assert storage.first_index() == 12
    assert storage.read_entries(0, 2) == make_entries(12, 13, 1)


def test_reads_from_another_thread_see_only_whole_batches(storage: DurableStorage) -> None:
    batch_size, batches = 10, 150
    seen_sizes: list[int] = []
    done = threading.Event()

    def reader() -> None:
        while True:
            seen_sizes.append(len(storage.read_entries(0, 1_000_000)))
            if done.is_set():
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for b in range(batches):
            storage.persist(None, make_entries(b * batch_size + 1, (b + 1) * batch_size, 1))
    finally:
        done.set()
        thread.join()
    assert seen_sizes, "the reader never ran"
    assert all(size % batch_size == 0 for size in seen_sizes)
    assert seen_sizes == sorted(seen_sizes)
    assert len(storage.read_entries(0, 1_000_000)) == batch_size * batches


# Lifecycle -------------------------------------------------------------------------------


def test_one_instance_per_data_directory(data_dir: Path) -> None:
    with DurableStorage(data_dir), pytest.raises(StorageError, match="in use"):
        DurableStorage(data_dir)
    with DurableStorage(data_dir) as again:
        assert again.load().entries == []


def test_closed_storage_refuses_calls(data_dir: Path) -> None:
    storage = DurableStorage(data_dir)
    storage.close()
    storage.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        storage.persist(None, make_entries(1, 1, 1))
    with pytest.raises(StorageError, match="closed"):
        storage.load()
    with pytest.raises(StorageError, match="closed"):
        storage.read_entries(0, 1)


def test_a_failed_write_stops_further_writes(storage: DurableStorage, data_dir: Path) -> None:
    storage.persist(None, make_entries(1, 3, 1))
    shutil.rmtree(data_dir / "snapshots")  # the snapshot write will fail
    with pytest.raises(StorageError, match="persist failed"):
        storage.persist(None, [], snapshot=make_snapshot(5, 2))
    with pytest.raises(StorageError, match="earlier failure"):
        storage.persist(None, make_entries(4, 4, 1))
