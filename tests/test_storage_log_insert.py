"""The log database inserts a batch of entries in a few multi-row statements, not one per
entry: each statement costs the disk thread a take of the GIL back from a busy loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from raft3d.consensus.types import Entry, EntryType
from raft3d.storage.log_db import MAX_INSERT_ROWS, LogDatabase


def _entries(first: int, count: int) -> list[Entry]:
    kinds = (EntryType.NORMAL, EntryType.NOOP)
    return [
        Entry(first + i, 1 + i // 7, b"e%d" % (first + i), kinds[i % 3 == 0]) for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 61, 64, MAX_INSERT_ROWS - 1, MAX_INSERT_ROWS, 600])
def test_a_batch_is_stored_whole_in_order(tmp_path: Path, count: int) -> None:
    db = LogDatabase(tmp_path / "log.db", writer=True)
    try:
        written = _entries(1, count)
        with db.transaction():
            db.insert_entries(written)
        assert db.entries_after(0) == written
        assert db.bounds()[2] == count
    finally:
        db.close()


@pytest.mark.parametrize(
    ("count", "statements"), [(1, 1), (64, 1), (61, 5), (255, 8), (MAX_INSERT_ROWS, 1), (600, 5)]
)
def test_a_batch_takes_one_statement_per_bit_of_its_size(
    tmp_path: Path, count: int, statements: int
) -> None:
    db = LogDatabase(tmp_path / "log.db", writer=True)
    seen: list[str] = []
    try:
        db._conn.set_trace_callback(seen.append)
        with db.transaction():
            db.insert_entries(_entries(1, count))
        inserts = [sql for sql in seen if sql.startswith("INSERT INTO log_entries")]
        assert len(inserts) == statements
    finally:
        db.close()
