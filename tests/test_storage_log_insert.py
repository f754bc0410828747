"""The log database writes a Ready (its entries and hard state) in one statement when they
fit in one, not in a statement per entry plus BEGIN, the hard state and COMMIT: each
statement costs the disk thread a take of the GIL back from a busy loop."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from raft3d.consensus.types import Entry, EntryType, HardState
from raft3d.storage.log_db import MAX_INSERT_ROWS, LogDatabase


def _entries(first: int, count: int) -> list[Entry]:
    kinds = (EntryType.NORMAL, EntryType.NOOP, EntryType.CONF_CHANGE)
    return [Entry(first + i, 1 + i // 7, b"e%d" % (first + i), kinds[i % 3]) for i in range(count)]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[LogDatabase]:
    database = LogDatabase(tmp_path / "log.db", writer=True)
    yield database
    database.close()


class _Counting:
    """The connection ``db`` uses, recording each statement it is given to run."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.seen: list[str] = []

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        self.seen.append(sql)
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _statements(db: LogDatabase) -> list[str]:
    """The statements ``db`` runs from now on."""
    counting = _Counting(db._conn)
    db._conn = counting  # type: ignore[assignment]
    return counting.seen


@pytest.mark.parametrize("count", [1, 2, 3, 61, 64, MAX_INSERT_ROWS - 1, MAX_INSERT_ROWS, 600])
def test_a_write_stores_its_entries_whole_and_in_order(db: LogDatabase, count: int) -> None:
    written = _entries(1, count)
    db.write(written, HardState(3, "n2", count))
    assert db.entries_after(0) == written
    assert db.bounds() == (1, count, count)
    assert db.hard_state() == HardState(3, "n2", count)


def test_the_hard_state_alone_and_a_vote_of_none(db: LogDatabase) -> None:
    db.write([], HardState(2, "n1", 0))
    assert db.hard_state() == HardState(2, "n1", 0)
    db.write(_entries(1, 2), HardState(3, None, 1))
    assert db.hard_state() == HardState(3, None, 1)
    db.write(_entries(3, 1))  # no hard state: the stored one stays
    assert db.hard_state() == HardState(3, None, 1)
    assert db.bounds() == (1, 3, 3)


@pytest.mark.parametrize("count", [1, 5, 63, MAX_INSERT_ROWS - 1])
def test_a_write_that_fits_is_one_statement_and_its_own_transaction(
    db: LogDatabase, count: int
) -> None:
    seen = _statements(db)
    db.write(_entries(1, count), HardState(1, "n1", 0))
    assert len(seen) == 1, seen
    assert seen[0].startswith("INSERT INTO log_append")


def test_a_bigger_write_is_one_transaction_of_full_statements(db: LogDatabase) -> None:
    seen = _statements(db)
    db.write(_entries(1, 2 * MAX_INSERT_ROWS + 10), HardState(1, "n1", 0))
    assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"
    assert len(seen) == 5


def test_a_write_that_fails_leaves_nothing(db: LogDatabase) -> None:
    db.write(_entries(1, 3), HardState(1, "n1", 0))
    clash = [*_entries(4, 2), Entry(2, 1, b"again")]  # index 2 is stored already
    with pytest.raises(sqlite3.IntegrityError):
        db.write(clash, HardState(9, "n3", 5))
    assert db.bounds() == (1, 3, 3)
    assert db.hard_state() == HardState(1, "n1", 0)
    with pytest.raises(sqlite3.IntegrityError):  # the same across several statements
        db.write([*_entries(4, MAX_INSERT_ROWS + 1), Entry(3, 1, b"again")], HardState(9, "n3", 5))
    assert db.bounds() == (1, 3, 3)
    assert db.hard_state() == HardState(1, "n1", 0)


def test_a_database_written_before_the_view_existed_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    old = LogDatabase(path, writer=True)
    old.write(_entries(1, 2), HardState(1, "n1", 1))
    old._conn.execute("DROP TRIGGER log_append_row")
    old._conn.execute("DROP VIEW log_append")
    old.close()
    reopened = LogDatabase(path, writer=True)
    try:
        reopened.write(_entries(3, 2), HardState(2, "n1", 3))
        assert reopened.entries_after(0) == _entries(1, 2) + _entries(3, 2)
        assert reopened.hard_state() == HardState(2, "n1", 3)
    finally:
        reopened.close()
