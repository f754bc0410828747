"""The snapshot half of ``DurableStorage``: which snapshot files are committed, the one the
log continues from (its base), and the files written ahead of their commit.

``DurableStorage`` decides what is committed (its database transaction is the commit point)
and tells the catalog; the catalog keeps the newest ``keep`` committed files, hands out the
base's data (whole, or by byte range from its file) and holds the staged files until their
commit. ``stage`` and ``take_staged`` may be called from any thread; the rest runs under the
storage's write lock, but for the reads (``committed``, ``base_data``, ``read_base``), which
see the base of the moment and retry when a newer snapshot replaces it as they read.
"""

from __future__ import annotations

import threading

from raft3d.consensus.types import Snapshot, SnapshotMeta
from raft3d.storage.errors import StorageCorruptError
from raft3d.storage.snapshot_file import (
    InvalidSnapshotFile,
    SnapshotFileData,
    SnapshotInfo,
    read_snapshot_file,
)
from raft3d.storage.snapshot_store import SnapshotStore, newest_first


class SnapshotCatalog:
    __slots__ = ("_committed", "_keep", "_staged", "_staged_lock", "_store", "base")

    def __init__(self, store: SnapshotStore, keep: int) -> None:
        self._store = store
        self._keep = keep
        self._committed: list[SnapshotInfo] = []  # newest first
        self.base: SnapshotInfo | None = None
        # Files written ahead of their commit (``stage_local_snapshot``), by (index, term).
        self._staged: dict[tuple[int, int], SnapshotInfo] = {}
        self._staged_lock = threading.Lock()

    def recovered(self, committed: list[SnapshotInfo], base: SnapshotInfo | None) -> None:
        """What recovery found committed (newest first) and the base among them."""
        self._committed = committed
        self.base = base

    # Staging --------------------------------------------------------------------------------

    def stage(self, meta: SnapshotMeta, info: SnapshotInfo) -> None:
        with self._staged_lock:
            self._staged[(meta.index, meta.term)] = info

    def is_staged(self, meta: SnapshotMeta) -> bool:
        with self._staged_lock:
            return (meta.index, meta.term) in self._staged

    def take_staged(self, meta: SnapshotMeta) -> SnapshotInfo | None:
        with self._staged_lock:
            return self._staged.pop((meta.index, meta.term), None)

    # Committing -----------------------------------------------------------------------------

    def set_base(self, info: SnapshotInfo) -> None:
        """``info`` is committed and the log continues from it."""
        self.base = info
        self._committed = newest_first(
            [info, *(s for s in self._committed if s.index < info.index)]
        )

    def prune(self) -> None:
        """Keep the newest ``keep`` committed snapshot files."""
        if len(self._committed) > self._keep:
            stale = self._committed[self._keep :]
            self._committed = self._committed[: self._keep]
            self._store.remove(s.path for s in stale)

    # Reading --------------------------------------------------------------------------------

    def committed(self) -> list[SnapshotInfo]:
        return list(self._committed)

    def base_data(self, index: int) -> SnapshotFileData | None:
        """The base's data read from its file by byte range, if the base is at ``index``."""
        info = self.base
        if info is None or info.index != index:
            return None
        try:
            return SnapshotFileData(info.path)
        except InvalidSnapshotFile:
            return None  # replaced and removed meanwhile: the caller keeps what it holds

    def read_base(self) -> Snapshot | None:
        """The base, read and verified; None if there is none."""
        while True:
            info = self.base
            if info is None:
                return None
            try:
                return read_snapshot_file(info.path)[1]
            except InvalidSnapshotFile as exc:
                if self.base is not info:
                    continue  # a newer snapshot replaced it while we read; read that one
                raise StorageCorruptError(f"snapshot file {info.path} is invalid: {exc}") from exc
