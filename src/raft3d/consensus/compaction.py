"""The part of ``RaftCore`` that compacts the log: it records the application's snapshot of
its own state, drops the log up to it (keeping ``CoreConfig.trailing_entries`` behind), and
keeps that snapshot to bring laggards up to date, in memory or read from its durable file
(``serve_from``)."""

from __future__ import annotations

from raft3d.consensus.parts import CoreParts
from raft3d.consensus.types import ServedSnapshot, Snapshot, SnapshotData, SnapshotMeta


class Compaction(CoreParts):
    _applied: int

    @property
    def snapshot_index(self) -> int:
        """Index of the newest snapshot; the log may still hold trailing entries below it."""
        own = self._snapshot.meta.index if self._snapshot is not None else 0
        return max(own, self._log.snapshot_index)

    def compact(self, index: int, data: bytes) -> Snapshot:
        """Record the application's snapshot ``data`` of the state at applied ``index`` and
        drop the log up to it. The snapshot is kept to bring laggards up to date."""
        return Snapshot(self.compact_served(index, data), data)

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """What ``compact`` at ``index`` records with the data (raises as it would), for a
        caller that writes the snapshot's file before it compacts."""
        if index > self._applied:
            raise ValueError(f"cannot compact at {index}: only {self._applied} is applied")
        if index <= self.snapshot_index:
            if self._snapshot is not None and index == self._snapshot.meta.index:
                return self._snapshot.meta
            raise ValueError(f"cannot compact at {index}: already compacted past it")
        term = self._log.term_at(index)
        if term is None:
            raise ValueError(f"cannot compact at {index}: not in the log")
        return SnapshotMeta.of(index, term, self._confs.state_at(index))

    def compact_served(self, index: int, data: SnapshotData) -> SnapshotMeta:
        """``compact`` with the data in any ``SnapshotData`` form (its durable file, say)."""
        meta = self.snapshot_meta(index)
        if index <= self.snapshot_index:
            return meta  # compacted there already
        keep_from = index - self._cfg.trailing_entries
        if keep_from > self._log.snapshot_index:
            self._log.compact(keep_from)
        self._confs.compact(index)
        self._snapshot = ServedSnapshot(meta, data)
        return meta

    def serve_from(self, index: int, data: SnapshotData) -> bool:
        """Send laggards the snapshot at ``index`` read from ``data`` (the same bytes, e.g.
        its durable file read chunk by chunk) rather than from the bytes held until now,
        which are then dropped. False (nothing changes) if the core's snapshot is not the
        one at ``index`` any more, or ``data`` is not of its length."""
        snap = self._snapshot
        if snap is None or snap.meta.index != index or len(data) != len(snap.data):
            return False
        self._snapshot = ServedSnapshot(snap.meta, data)
        # A transfer in progress goes on from the same offset in the same bytes.
        for pr in self._progress.values():
            if pr.snapshot is snap:
                pr.snapshot = self._snapshot
        return True

    @property
    def served_snapshot(self) -> ServedSnapshot | None:
        """The snapshot laggards are sent now (see ``serve_from``)."""
        return self._snapshot
