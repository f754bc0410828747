"""``DurableStorage``: one node's durable Raft state (log, hard state, snapshots).

Layout of a data directory::

    <data_dir>/LOCK                 advisory lock: one storage instance per directory
    <data_dir>/raft.db              SQLite (WAL): log entries, hard state, log base
    <data_dir>/snapshots/*.snap     snapshot files (see ``snapshot_file``)

Commit protocol for snapshots: the file is written durably first, then one database
transaction compacts or replaces the log and records the snapshot's (index, term) as the log
base. That transaction is the commit point: after a crash, a snapshot file newer than the
recorded base belongs to a call that never returned and is removed, so every ``persist`` and
``save_local_snapshot`` is all-or-nothing. Which files are committed, the base among them
and the files staged ahead of their commit are kept by ``snapshot_catalog``. What a
compaction drops leaves later, off the write path: the log's rows a step at a time with the
appends that follow (``log_db.TRIM_STEP``), the old files on a thread of their own
(``file_removal``).

Threading: one thread writes at a time (the node's persist worker). The read API used by the
event log endpoint (``read_entries``, ``first_index``, ``last_index``, ``list_snapshots``,
``latest_snapshot``) may be called from another thread meanwhile: reads go through their own
connection and only ever see committed state.

Apply outcomes are not stored here: the state machine keeps those of the entries still held
and carries them in its snapshots. A local snapshot keeps the last ``trailing_entries``
entries below it (for event readers); ``first_index`` is then below the snapshot's index.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from raft3d.consensus.types import Entry, HardState, InitialState, Snapshot, SnapshotMeta
from raft3d.storage.durable_files import ensure_directory, fsync_directory, lock_directory
from raft3d.storage.errors import StorageCorruptError, StorageError
from raft3d.storage.log_db import LogDatabase, check_appendable
from raft3d.storage.snapshot_catalog import SnapshotCatalog
from raft3d.storage.snapshot_file import SnapshotFileData, SnapshotInfo
from raft3d.storage.snapshot_store import SnapshotStore, StreamedWrite

log = logging.getLogger(__name__)

DB_FILE_NAME = "raft.db"
SNAPSHOT_DIR_NAME = "snapshots"


class DurableStorage:
    """The durable state of one node. Open it, ``load()`` once, then ``persist`` every Ready.

    Opening takes the data directory's lock, removes leftovers of interrupted snapshot writes
    and checks consistency; ``load()`` reports a corrupt directory. Usable as a context manager.
    """

    def __init__(
        self, data_dir: Path, *, snapshots_keep: int = 2, trailing_entries: int = 0
    ) -> None:
        if snapshots_keep < 1:
            raise ValueError("snapshots_keep must be at least 1")
        if trailing_entries < 0:
            raise ValueError("trailing_entries must not be negative")
        self.data_dir = Path(data_dir)
        # A local snapshot at index S keeps entries (S - trailing, S] in the log, for event
        # readers; ``load`` still hands the core only the entries after S.
        self._trailing = trailing_entries
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        # Set when the directory is inconsistent (load refuses) or a write failed part-way
        # (state on disk unknown, further writes refused).
        self._corruption: str | None = None
        self._failure: str | None = None

        ensure_directory(self.data_dir)
        self._lock_fd = lock_directory(self.data_dir)
        try:
            self._snapshots = SnapshotStore(self.data_dir / SNAPSHOT_DIR_NAME)
            self._catalog = SnapshotCatalog(self._snapshots, snapshots_keep)
            self._db = LogDatabase(self.data_dir / DB_FILE_NAME, writer=True)
        except BaseException:
            os.close(self._lock_fd)
            raise
        try:
            fsync_directory(self.data_dir)  # the database files' directory entries
            self._reader = LogDatabase(self.data_dir / DB_FILE_NAME, writer=False)
        except BaseException:
            self._db.close()
            os.close(self._lock_fd)
            raise
        try:
            with _storage_errors("recovery"):
                self._recover()
        except BaseException:
            self.close()
            raise

    # Recovery -----------------------------------------------------------------------------

    def _recover(self) -> None:
        self._snapshots.remove_temp_leftovers()
        base_index, base_term = self._db.base()
        valid, invalid = self._snapshots.scan()
        committed = [
            s
            for s in valid
            if base_index > 0
            and (s.index < base_index or (s.index, s.term) == (base_index, base_term))
        ]
        uncommitted = [s for s in valid if s not in committed]
        self._base_index, self._base_term = base_index, base_term
        base = None
        if base_index > 0:
            if not committed or committed[0].index != base_index:
                self._corruption = (
                    f"the log was compacted through index {base_index} (term {base_term}) but "
                    f"no valid snapshot file for it exists in {self._snapshots.directory}"
                )
            else:
                base = committed[0]
        self._catalog.recovered(committed, base)

        low, high, count = self._db.bounds()
        # Entries at or below the base are the trailing entries a local snapshot kept.
        if count and (low > base_index + 1 or high < base_index or high - low + 1 != count):
            self._corruption = self._corruption or (
                f"the log after snapshot index {base_index} is not contiguous: "
                f"{count} entries between indexes {low} and {high}"
            )
        self._first_index = low if count else base_index + 1
        self._last_index = high if count else base_index

        if self._corruption is not None:
            log.error("storage in %s is corrupt: %s", self.data_dir, self._corruption)
            return  # leave every file in place for inspection
        # Rows below the first index kept that a crash left before the appends deleted them.
        self._first_index = max(self._first_index, self._db.finish_trim())
        if uncommitted:
            log.info("removing %d snapshot file(s) from interrupted writes", len(uncommitted))
        self._snapshots.remove([s.path for s in uncommitted] + invalid)
        self._catalog.prune()
        self._snapshots.flush_removals()  # an opened directory holds only what it keeps

    # Loading ------------------------------------------------------------------------------

    def load(self) -> InitialState:
        """The durable state to start a core from.

        Raises ``StorageCorruptError`` if the snapshot the log was compacted to is missing or
        invalid, or the log after it has a gap.
        """
        with self._write_lock:
            self._check_open()
            if self._corruption is not None:
                raise StorageCorruptError(self._corruption)
            snapshot = self._catalog.read_base()
            with _storage_errors("load"):
                hard_state = self._db.hard_state()
                entries = self._db.entries_after(self._base_index)
            for offset, entry in enumerate(entries):
                if entry.index != self._base_index + 1 + offset:
                    raise StorageCorruptError(
                        f"log gap after snapshot index {self._base_index}: expected entry "
                        f"{self._base_index + 1 + offset}, found {entry.index}"
                    )
            return InitialState(hard_state=hard_state, snapshot=snapshot, entries=entries)

    # Writing ------------------------------------------------------------------------------

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Make one ``Ready``'s state durable: one transaction, one fsync of the log database.

        ``snapshot`` (received from a leader) is written to its file first, then the whole
        stored log is dropped. ``entries`` replace every stored entry from ``entries[0].index``
        on. ``hard_state`` (if given) replaces the stored one. Raises ``ValueError`` (nothing
        written) for entries that would leave a gap or overwrite the snapshot, or a snapshot
        older than the stored one; ``StorageError`` if the write fails, after which the instance
        refuses writes.
        """
        with self._write_lock:
            self._check_writable()
            base_index, last_index = self._base_index, self._last_index
            if snapshot is not None:
                self._check_snapshot_order(snapshot.meta)
                base_index = last_index = snapshot.meta.index
            if entries:
                check_appendable(entries, base_index, last_index)
            if hard_state is None and not entries and snapshot is None:
                return
            with self._failing_on_error("persist"):
                info = None
                if snapshot is not None:
                    info = self._snapshots.write(snapshot, time.time())
                if snapshot is None and not (entries and entries[0].index <= last_index):
                    self._db.write(entries, hard_state)  # a plain append: atomic on its own
                else:
                    with self._db.transaction():
                        if snapshot is not None:
                            self._db.reset(snapshot.meta.index, snapshot.meta.term)
                        elif entries:  # a conflicting suffix goes
                            self._db.delete_from(entries[0].index)
                        self._db.write(entries, hard_state)
            if info is not None:
                self._set_base(info)
                self._last_index = info.index  # the received snapshot replaced the whole log
            if entries:
                self._last_index = entries[-1].index
            if info is not None:
                self._catalog.prune()

    def stage_local_snapshot(self, snapshot: Snapshot) -> None:
        """Write ``snapshot``'s file durably, from any thread, outside the write lock (under
        it, log appends waited seconds for a large file); ``save_local_snapshot`` of the same
        snapshot then only commits it. A crash before the commit leaves a file newer than
        the log's base, which recovery removes like any interrupted snapshot write."""
        meta = snapshot.meta
        self._check_writable()
        with self._failing_on_error("stage_local_snapshot"):
            info = self._snapshots.write(snapshot, time.time())
        self._catalog.stage(meta, info)

    def open_local_snapshot(self, meta: SnapshotMeta) -> StreamedWrite:
        """``stage_local_snapshot`` with the data written part by part as it is encoded, so
        that it is never held whole (``StreamedWrite``, on one thread at a time, e.g. the
        writer thread); once it is finished, ``commit_local_snapshot`` commits it."""
        self._check_writable()

        def staged(info: SnapshotInfo) -> None:
            self._catalog.stage(meta, info)

        with self._failing_on_error("stage_local_snapshot"):
            return self._snapshots.streamed(
                meta,
                time.time(),
                on_finished=staged,
                guard=lambda: self._failing_on_error("stage_local_snapshot"),
            )

    def commit_local_snapshot(self, meta: SnapshotMeta) -> None:
        """``save_local_snapshot`` of the snapshot staged by ``open_local_snapshot``."""
        if not self._catalog.is_staged(meta):
            raise ValueError(f"no snapshot staged at index {meta.index}, term {meta.term}")
        self.save_local_snapshot(Snapshot(meta, b""))  # its file is staged: never written

    def save_local_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of this node's own applied state and compact the log up to it.

        The snapshot's index must be in the log (or be the current snapshot) with a matching
        term. Entries at or below its index are deleted but for the last ``trailing_entries``
        of them; snapshot files beyond the newest ``snapshots_keep`` are removed.
        """
        meta = snapshot.meta
        with self._write_lock:
            self._check_writable()
            self._check_snapshot_order(meta)
            if meta.index > self._last_index:
                raise ValueError(
                    f"snapshot index {meta.index} is beyond the last log index {self._last_index}"
                )
            if meta.index > self._base_index:
                with _storage_errors("save_local_snapshot"):
                    stored_term = self._db.term_at(meta.index)
                if stored_term != meta.term:
                    raise ValueError(
                        f"snapshot term {meta.term} differs from the log's term {stored_term} "
                        f"at index {meta.index}"
                    )
            staged = self._catalog.take_staged(meta)
            with self._failing_on_error("save_local_snapshot"):
                info = staged or self._snapshots.write(snapshot, time.time())
                keep_from = max(self._first_index, meta.index - self._trailing + 1)
                with self._db.transaction():  # the rows below go with the next appends
                    self._db.put_base(meta.index, meta.term, keep_from)
            self._set_base(info)
            self._first_index = min(keep_from, meta.index + 1)
            self._catalog.prune()

    def _check_snapshot_order(self, meta: SnapshotMeta) -> None:
        if meta.index < 1:
            raise ValueError("a snapshot must cover at least one entry (index >= 1)")
        if meta.index < self._base_index:
            raise ValueError(
                f"snapshot at index {meta.index} is older than the stored snapshot at "
                f"{self._base_index}"
            )
        if meta.index == self._base_index and meta.term != self._base_term:
            raise ValueError(
                f"snapshot at index {meta.index} has term {meta.term} but the stored snapshot "
                f"at that index has term {self._base_term}"
            )

    def _set_base(self, info: SnapshotInfo) -> None:
        self._base_index, self._base_term = info.index, info.term
        self._first_index = info.index + 1
        self._catalog.set_base(info)

    # Reading ------------------------------------------------------------------------------

    def first_index(self) -> int:
        """Oldest log index still held; snapshot index + 1 when the log is empty."""
        return self._first_index

    def last_index(self) -> int:
        """Newest log index; the snapshot index when the log is empty."""
        return self._last_index

    def read_entries(self, after: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with index > ``after``, in order."""
        if limit < 0:
            raise ValueError("limit must be >= 0")
        with self._read_lock:
            self._check_open()
            with _storage_errors("read_entries"):  # never the rows still to be trimmed
                return self._reader.entries_after(max(after, self._first_index - 1), limit)

    def list_snapshots(self) -> list[SnapshotInfo]:
        """Committed snapshot files, newest first (verified when opened or written)."""
        return self._catalog.committed()

    def latest_snapshot(self) -> Snapshot | None:
        """The snapshot the log continues from, read and verified; None if there is none."""
        self._check_open()
        return self._catalog.read_base()

    def flush_removals(self) -> None:
        """Until the snapshot files dropped so far (removed on a thread of their own, off the
        write lock: ``raft3d.storage.file_removal``) are gone from the directory."""
        self._snapshots.flush_removals()

    def snapshot_data(self, index: int) -> SnapshotFileData | None:
        """The data of the snapshot the log continues from, if it is the one at ``index``,
        read from its file by byte range (``SnapshotFileData``); None otherwise."""
        self._check_open()
        return self._catalog.base_data(index)

    # Lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._reader.close()
                self._db.close()
                self._snapshots.close()  # the removals handed over are finished
            finally:
                os.close(self._lock_fd)

    def __enter__(self) -> DurableStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._corruption is not None:
            raise StorageCorruptError(self._corruption)
        if self._failure is not None:
            raise StorageError(f"refusing writes after an earlier failure: {self._failure}")

    @contextmanager
    def _failing_on_error(self, what: str) -> Iterator[None]:
        """A write that fails part-way leaves the disk in an unknown state: stop writing."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            self._failure = f"{what} failed: {exc}"
            raise StorageError(self._failure) from exc


@contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"{what} failed: {exc}") from exc
