"""The SQLite database holding the Raft log and the hard state.

Tables:

- ``log_entries``: one row per entry, ``idx`` is the rowid (cheap range scans and deletes).
- ``hard_state``: a single row (term, vote, commit).
- ``log_base``: a single row, the (index, term) of the snapshot the log continues from. It is
  changed in the same transaction that compacts or replaces the log, which makes that
  transaction the commit point of a snapshot: a snapshot file newer than ``log_base`` is the
  leftover of a write that crashed before committing.
- ``log_trim``: a single row, the first index the log keeps since the last compaction (absent
  in databases older than it: then the first row is the first kept). Rows below it are
  deleted a step at a time, with the appends that follow (``write``, ``TRIM_STEP``).
- ``log_append``: a view that only takes inserts; its trigger puts each row into the log or
  the hard state, so that a whole append is one statement (``LogDatabase.write``).

The database runs in WAL mode with ``synchronous=FULL``: a transaction is durable when COMMIT
returns, at the cost of one fsync of the WAL.
"""

from __future__ import annotations

import bisect
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
CREATE TABLE IF NOT EXISTS log_trim (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    first_index INTEGER NOT NULL
);
"""

# Writes go through a view whose trigger routes each row by its type: an entry (0 and up)
# into ``log_entries``, the hard state (``_HARD_STATE_ROW``) into ``hard_state``, padding
# (``_PADDING``) nowhere. So a Ready's whole write is one INSERT statement, its own
# transaction (``write``). Created on every open of the writer: an older database gains
# them, an older node ignores them.
_APPEND_VIEW = """
CREATE VIEW IF NOT EXISTS log_append (idx, term, type, data) AS
    SELECT idx, term, type, data FROM log_entries
"""
_APPEND_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS log_append_row INSTEAD OF INSERT ON log_append
BEGIN
    INSERT INTO log_entries (idx, term, type, data)
        SELECT NEW.idx, NEW.term, NEW.type, NEW.data WHERE NEW.type >= 0;
    INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index)
        SELECT 0, NEW.term, NEW.data, NEW.idx WHERE NEW.type = -1;
END
"""
# A second trigger deletes the rows through a trim row's index (``_TRIM_ROW``), so the
# trimming after a compaction rides along with the appends. A separate trigger, not a third
# branch of the first: a database keeps the trigger it was first given, and an older node
# never writes trim rows.
_TRIM_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS log_append_trim INSTEAD OF INSERT ON log_append
WHEN NEW.type = -3
BEGIN
    DELETE FROM log_entries WHERE idx <= NEW.idx;
END
"""
_HARD_STATE_ROW = -1  # (commit, term, -1, vote)
_TRIM_ROW = -3  # (through, None, -3, None)
# Rows one append deletes below a compaction: ``TRIM_STEP``, or twice the entries it adds if
# that is more, so the deleting outpaces the log's growth. Deleting 12,800 rows in the
# compaction's own transaction held the disk thread 12-17 ms, every append waiting; an
# append of 64 entries that deletes 128 rows takes what one that deletes none does
# (512 rows: about 0.45 ms more; ``benchmarks/compaction_bench.py``).
TRIM_STEP = 128
_PADDING = (None, None, -2, None)
_APPEND = "INSERT INTO log_append (idx, term, type, data) VALUES "
# The most rows one statement carries (4 parameters each, far below SQLite's limit).
MAX_INSERT_ROWS = 256
_PUT_BASE = "INSERT OR REPLACE INTO log_base (id, snapshot_index, snapshot_term) VALUES (0, ?, ?)"
_PUT_TRIM = "INSERT OR REPLACE INTO log_trim (id, first_index) VALUES (0, ?)"
# A negative LIMIT means no limit in SQLite.
_ENTRIES_AFTER = "SELECT idx, term, type, data FROM log_entries WHERE idx > ? ORDER BY idx LIMIT ?"


class LogDatabase:
    """One connection to the log database. Not thread-safe: callers serialize access."""

    def __init__(self, path: Path, *, writer: bool) -> None:
        try:
            # isolation_level=None: no implicit transactions, we issue BEGIN/COMMIT ourselves.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Rows through ``_trim_to`` are to go; those through ``_trimmed`` are gone.
            self._trim_to = self._trimmed = 0
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
            self._conn.execute(_APPEND_VIEW)
            self._conn.execute(_APPEND_TRIGGER)
            self._conn.execute(_TRIM_TRIGGER)

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

    # Writes: call inside ``transaction()``, except ``write``, which is atomic on its own.

    def write(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        """Append ``entries`` and replace the hard state (if given). Outside ``transaction()``
        this is atomic on its own: one statement (its own transaction, one fsync) when the
        rows fit in one, else a transaction of its own. Inside, it is part of the caller's.

        The sqlite3 module lets go of the GIL for each statement and takes it back after:
        from a loop thread that is busy, each take waits up to the switch interval. Beside a
        busy thread, at p50, a Ready of 64 entries took 5.2 ms as BEGIN, one statement per
        entry (``executemany``), the hard state and COMMIT; 1.6 ms with one INSERT for the
        entries; 1.3 ms as one statement. A Ready of one entry: 1.6, 1.6 and 1.1 ms. Idle,
        all three take the same (``benchmarks/log_insert_bench.py``)."""
        rows: list[tuple[object, ...]] = [(e.index, e.term, int(e.type), e.data) for e in entries]
        if hard_state is not None:
            rows.append((hard_state.commit, hard_state.term, _HARD_STATE_ROW, hard_state.vote))
        if not rows:
            return
        trim = self._trimmed
        if not self._conn.in_transaction:  # the caller's transaction may yet roll back
            trim = min(self._trim_to, trim + max(TRIM_STEP, 2 * len(entries)))
        if trim > self._trimmed:
            rows.append((trim, None, _TRIM_ROW, None))  # in the same statement: atomic with it
        if len(rows) <= MAX_INSERT_ROWS or self._conn.in_transaction:
            self._insert(rows)
        else:
            with self.transaction():
                self._insert(rows)
        self._trimmed = trim

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        execute = self._conn.execute
        for start in range(0, len(rows), MAX_INSERT_ROWS):
            run = rows[start : start + MAX_INSERT_ROWS]
            size = _statement_rows(len(run))
            params: list[object] = []
            for row in run:
                params += row
            params += _PADDING * (size - len(run))
            execute(_append_statement(size), params)

    def delete_from(self, index: int) -> None:
        """Delete entries with index >= ``index``."""
        self._conn.execute("DELETE FROM log_entries WHERE idx >= ?", (index,))

    def reset(self, index: int, term: int) -> None:
        """Drop the whole log: it continues from the snapshot at (``index``, ``term``)."""
        self._conn.execute("DELETE FROM log_entries")
        self.put_base(index, term, index + 1)
        self._trimmed = self._trim_to

    def put_base(self, index: int, term: int, keep_from: int) -> None:
        """The snapshot the log continues from, and the first index kept: the rows below it
        are deleted a step at a time by the appends that follow (``TRIM_STEP``)."""
        self._conn.execute(_PUT_BASE, (index, term))
        self._conn.execute(_PUT_TRIM, (keep_from,))
        self._trim_to = max(self._trim_to, keep_from - 1)

    def finish_trim(self) -> int:
        """Delete every row below the first index kept (on opening: a crash may have left
        some); returns that index, 0 if none was ever set."""
        row = self._conn.execute("SELECT first_index FROM log_trim WHERE id = 0").fetchone()
        if row is None:
            return 0
        self._conn.execute("DELETE FROM log_entries WHERE idx < ?", (row[0],))
        self._trim_to = self._trimmed = row[0] - 1
        return int(row[0])

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


# The row counts statements are prepared for: powers of two and 1.25 and 1.5 times them, so
# a write is padded by at most a quarter and only 22 distinct statements exist.
_STATEMENT_ROWS = sorted(
    {
        min(MAX_INSERT_ROWS, n * f // 4)
        for n in (1, 2, 4, 8, 16, 32, 64, 128, 256)
        for f in (4, 5, 6)
    }
)


def _statement_rows(rows: int) -> int:
    """The smallest prepared row count that holds ``rows`` (at most ``MAX_INSERT_ROWS``)."""
    return _STATEMENT_ROWS[bisect.bisect_left(_STATEMENT_ROWS, rows)]


@functools.cache
def _append_statement(rows: int) -> str:
    return _APPEND + ", ".join(["(?, ?, ?, ?)"] * rows)


def check_appendable(entries: Sequence[Entry], base_index: int, last_index: int) -> None:
    """Raises ``ValueError`` unless ``entries`` (not empty) may follow a log whose snapshot
    is at ``base_index`` and whose last entry is at ``last_index``: contiguous, after the
    snapshot, leaving no gap."""
    first = entries[0].index
    if first <= base_index:
        raise ValueError(f"entry {first} is at or below the snapshot index {base_index}")
    if first > last_index + 1:
        raise ValueError(f"entries start at {first} but the log ends at {last_index}: a gap")
    for offset, entry in enumerate(entries):
        if entry.index != first + offset:
            raise ValueError(
                f"entries are not contiguous: {entry.index} follows {first + offset - 1}"
            )
