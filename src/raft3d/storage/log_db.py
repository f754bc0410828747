"""The SQLite database holding the Raft log and the hard state.

Tables:

- ``log_entries``: one row per entry, ``idx`` is the rowid (cheap range scans and deletes).
- ``hard_state``: a single row (term, vote, commit).
- ``log_base``: a single row, the (index, term) of the snapshot the log continues from. It is
  changed in the same transaction that compacts or replaces the log, which makes that
  transaction the commit point of a snapshot: a snapshot file newer than ``log_base`` is the
  leftover of a write that crashed before committing.

The database runs in WAL mode with ``synchronous=FULL``: a transaction is durable when COMMIT
returns, at the cost of one fsync of the WAL.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from raft3d.consensus.types import Entry, EntryType, HardState
from raft3d.storage.errors import StorageError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_entries (
    idx INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    type INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    term INTEGER NOT NULL,
    vote TEXT,
    commit_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_base (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    snapshot_index INTEGER NOT NULL,
    snapshot_term INTEGER NOT NULL
);
"""

_INSERT_ENTRIES = "INSERT INTO log_entries (idx, term, type, data) VALUES "
# The most rows one INSERT statement carries (4 parameters each, far below SQLite's limit).
MAX_INSERT_ROWS = 256
_PUT_HARD_STATE = (
    "INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (0, ?, ?, ?)"
)
_PUT_BASE = "INSERT OR REPLACE INTO log_base (id, snapshot_index, snapshot_term) VALUES (0, ?, ?)"
# A negative LIMIT means no limit in SQLite.
_ENTRIES_AFTER = "SELECT idx, term, type, data FROM log_entries WHERE idx > ? ORDER BY idx LIMIT ?"


class LogDatabase:
    """One connection to the log database. Not thread-safe: callers serialize access."""

    def __init__(self, path: Path, *, writer: bool) -> None:
        try:
            # isolation_level=None: no implicit transactions, we issue BEGIN/COMMIT ourselves.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if writer:
                self._prepare_writer()
            else:
                self._conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open log database {path}: {exc}") from exc

    def _prepare_writer(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StorageError(f"the log database cannot use WAL mode (got {mode!r})")
        self._conn.execute("PRAGMA synchronous = FULL")
        with self.transaction():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StorageError(f"log database has unknown schema version {version}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back if the body raises."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # Writes: call inside ``transaction()``.

    def insert_entries(self, entries: Sequence[Entry]) -> None:
        """In as few statements as the batch's size has bits set (``_insert_runs``).

        ``executemany`` runs one statement per row, and the sqlite3 module lets go of the GIL
        for each and takes it back after: from a loop thread that is busy, each take waits
        up to the switch interval. A Ready of 64 entries took 7 ms that way beside a busy
        thread, and 2.6 ms as one statement (``benchmarks/log_insert_bench.py``)."""
        start = 0
        for size in _insert_runs(len(entries)):
            run = entries[start : start + size]
            start += size
            params: list[object] = []
            for e in run:
                params += (e.index, e.term, int(e.type), e.data)
            self._conn.execute(_insert_statement(size), params)

    def delete_from(self, index: int) -> None:
        """Delete entries with index >= ``index``."""
        self._conn.execute("DELETE FROM log_entries WHERE idx >= ?", (index,))

    def delete_through(self, index: int) -> None:
        """Delete entries with index <= ``index``."""
        self._conn.execute("DELETE FROM log_entries WHERE idx <= ?", (index,))

    def delete_all(self) -> None:
        self._conn.execute("DELETE FROM log_entries")

    def put_hard_state(self, hard_state: HardState) -> None:
        self._conn.execute(_PUT_HARD_STATE, (hard_state.term, hard_state.vote, hard_state.commit))

    def put_base(self, index: int, term: int) -> None:
        self._conn.execute(_PUT_BASE, (index, term))

    # Reads.

    def hard_state(self) -> HardState:
        row = self._conn.execute(
            "SELECT term, vote, commit_index FROM hard_state WHERE id = 0"
        ).fetchone()
        return HardState() if row is None else HardState(row[0], row[1], row[2])

    def base(self) -> tuple[int, int]:
        row = self._conn.execute(
            "SELECT snapshot_index, snapshot_term FROM log_base WHERE id = 0"
        ).fetchone()
        return (0, 0) if row is None else (row[0], row[1])

    def bounds(self) -> tuple[int, int, int]:
        """(lowest index, highest index, number of entries); (0, 0, 0) for an empty log."""
        low, high, count = self._conn.execute(
            "SELECT MIN(idx), MAX(idx), COUNT(*) FROM log_entries"
        ).fetchone()
        return (0, 0, 0) if count == 0 else (low, high, count)

    def term_at(self, index: int) -> int | None:
        row = self._conn.execute("SELECT term FROM log_entries WHERE idx = ?", (index,)).fetchone()
        return None if row is None else int(row[0])

    def entries_after(self, index: int, limit: int = -1) -> list[Entry]:
        """Entries with index > ``index``, in order; at most ``limit`` unless it is negative."""
        rows = self._conn.execute(_ENTRIES_AFTER, (index, limit)).fetchall()
        return [Entry(i, t, d, EntryType(k)) for i, t, k, d in rows]


def _insert_runs(count: int) -> list[int]:
    """Row counts of the statements that insert ``count`` rows: full runs of
    ``MAX_INSERT_ROWS``, then the powers of two the rest is made of. So only a few distinct
    statements exist (all stay in the connection's statement cache) and a batch of n rows
    takes at most about log2(n) statements."""
    runs = [MAX_INSERT_ROWS] * (count // MAX_INSERT_ROWS)
    rest = count % MAX_INSERT_ROWS
    bit = MAX_INSERT_ROWS >> 1
    while rest:
        if rest & bit:
            runs.append(bit)
            rest -= bit
        bit >>= 1
    return runs


@functools.cache
def _insert_statement(rows: int) -> str:
    return _INSERT_ENTRIES + ", ".join(["(?, ?, ?, ?)"] * rows)
