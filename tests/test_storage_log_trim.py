"""A compaction's log prefix is deleted a step at a time by the appends after it, not in the
compaction's own transaction, where deleting 12,800 rows held the disk thread 12-17 ms
with every append waiting (``raft3d.storage.log_db.TRIM_STEP``)."""

from __future__ import annotations

import itertools
import sqlite3
from contextlib import closing
from pathlib import Path

from raft3d.consensus.types import HardState
from raft3d.storage import DurableStorage
from raft3d.storage.log_db import TRIM_STEP
from raft3d.storage.snapshot_store import SnapshotStore
from tests.support.durable import make_entries, make_snapshot, query

TRAILING = 100
LAST = 3 * TRIM_STEP + 250  # the compaction leaves more than two steps' worth to delete


def _rows(data_dir: Path) -> tuple[int, int]:
    low, count = query(data_dir, "SELECT MIN(idx), COUNT(*) FROM log_entries") or (0, 0)
    return int(low or 0), int(count)  # type: ignore[call-overload]


def _compacted(data_dir: Path) -> DurableStorage:
    storage = DurableStorage(data_dir, trailing_entries=TRAILING)
    storage.load()
    storage.persist(HardState(1, "n1", LAST), make_entries(1, LAST, 1))
    storage.save_local_snapshot(make_snapshot(LAST, 1))
    return storage


def test_no_write_deletes_more_than_a_step_and_the_prefix_goes_in_the_end(
    data_dir: Path,
) -> None:
    storage = _compacted(data_dir)
    keep_from = LAST - TRAILING + 1
    counts = [_rows(data_dir)[1]]
    assert counts[0] > LAST - TRIM_STEP  # the compaction itself deleted at most a step
    next_index = LAST + 1
    while _rows(data_dir)[0] < keep_from:
        assert next_index < LAST + 20, "the prefix is never deleted"
        storage.persist(HardState(1, "n1", next_index), make_entries(next_index, next_index, 1))
        next_index += 1
        counts.append(_rows(data_dir)[1])
    assert all(before - after + 1 <= TRIM_STEP for before, after in itertools.pairwise(counts))
    assert _rows(data_dir) == (keep_from, next_index - keep_from)
    assert storage.first_index() == keep_from
    storage.close()


def test_rows_still_to_delete_are_never_read(data_dir: Path) -> None:
    storage = _compacted(data_dir)
    assert _rows(data_dir)[0] == 1  # nothing appended since: all of them still there
    assert storage.first_index() == LAST - TRAILING + 1
    assert [e.index for e in storage.read_entries(0, 5)] == list(
        range(LAST - TRAILING + 1, LAST - TRAILING + 6)
    )
    storage.close()


def test_a_crash_before_the_prefix_went_reopens_with_it_gone(data_dir: Path) -> None:
    _compacted(data_dir).close()  # as a crash would leave it: the rows are still there
    assert _rows(data_dir)[0] == 1
    with DurableStorage(data_dir, trailing_entries=TRAILING) as reopened:
        state = reopened.load()
        assert reopened.first_index() == LAST - TRAILING + 1
        assert _rows(data_dir) == (LAST - TRAILING + 1, TRAILING)
        assert state.entries == []  # the core starts after the snapshot
        assert state.snapshot == make_snapshot(LAST, 1)


def test_a_received_snapshot_leaves_nothing_to_trim(data_dir: Path) -> None:
    storage = _compacted(data_dir)
    received = make_snapshot(LAST + 5000, 2)
    storage.persist(HardState(2, "n2", LAST + 5000), [], received)
    assert _rows(data_dir) == (0, 0)
    storage.persist(HardState(2, "n2", LAST + 5001), make_entries(LAST + 5001, LAST + 5001, 2))
    assert _rows(data_dir) == (LAST + 5001, 1)
    storage.close()
    with DurableStorage(data_dir) as reopened:
        assert reopened.first_index() == LAST + 5001
        assert [e.index for e in reopened.load().entries] == [LAST + 5001]


def test_a_log_compacted_by_an_older_node_opens_as_it_did(data_dir: Path) -> None:
    """An older node deleted the prefix itself and wrote no first index to keep."""
    with DurableStorage(data_dir, trailing_entries=TRAILING) as storage:
        storage.persist(HardState(1, "n1", 300), make_entries(1, 300, 1))
    store = SnapshotStore(data_dir / "snapshots")
    store.write(make_snapshot(250, 1), 0.0)
    store.close()
    with closing(sqlite3.connect(data_dir / "raft.db", isolation_level=None)) as db:
        db.execute("INSERT INTO log_base VALUES (0, 250, 1)")
        db.execute("DELETE FROM log_entries WHERE idx < 101")
    with DurableStorage(data_dir, trailing_entries=TRAILING) as reopened:
        assert reopened.first_index() == 101  # its trailing rows are all kept, as before
        assert [e.index for e in reopened.load().entries] == list(range(251, 301))
        assert reopened.read_entries(0, 1)[0].index == 101


def test_big_appends_delete_faster_than_they_add(data_dir: Path) -> None:
    """Each append deletes at least twice what it adds: the prefix cannot outgrow it."""
    storage = _compacted(data_dir)
    next_index = LAST + 1
    for _ in range(3):
        batch = make_entries(next_index, next_index + 599, 1)  # more than one statement holds
        storage.persist(HardState(1, "n1", batch[-1].index), batch)
        next_index += 600
    assert _rows(data_dir)[0] == LAST - TRAILING + 1
    storage.close()
