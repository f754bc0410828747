"""In-memory durable storage of one simulated node.

It has the node's ``Storage.persist`` contract (``raft3d.node.seams``): what the node
asks to persist becomes durable only when ``persist`` runs, atomically; a crash
before that loses it. Compaction saves the application's snapshot and drops the log prefix
it covers. The storage survives crashes; nothing else of a node does.
"""

from __future__ import annotations

from collections.abc import Sequence

from raft3d.consensus import Entry, HardState, InitialState, Snapshot

from .state_machine import SimStateMachine


class StorageContractError(AssertionError):
    """The core asked for something a real storage could not do (e.g. a gap in the log)."""


class MemoryStorage:
    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.snapshot_terms: list[int] = []  # term of every index the snapshot covers
        self.entries: list[Entry] = []  # contiguous, right after the snapshot

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.meta.index if self.snapshot is not None else 0

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    def term_at(self, index: int) -> int | None:
        """Durable term at ``index`` (from the log, or from the snapshot's contents)."""
        snap_index = self.snapshot_index
        if index > snap_index:
            offset = index - snap_index - 1
            return self.entries[offset].term if offset < len(self.entries) else None
        if index <= 0:
            return 0
        return self.snapshot_terms[index - 1]

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if hard_state is not None:
            self.save_hard_state(hard_state)
        if snapshot is not None:
            self.snapshot = snapshot
            self.snapshot_terms = SimStateMachine.from_snapshot(snapshot.data).terms
            self.entries = []
        if entries:
            first = entries[0].index
            snap_index = self.snapshot_index
            if first <= snap_index or first > self.last_index + 1:
                raise StorageContractError(
                    f"entries from {first} do not attach to the durable log "
                    f"(snapshot {snap_index}, last {self.last_index})"
                )
            del self.entries[first - snap_index - 1 :]
            self.entries.extend(entries)

    def save_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def save_compaction(self, snapshot: Snapshot, terms: list[int]) -> None:
        """The driver compacted at ``snapshot.meta.index``; ``terms`` are the applied terms."""
        index = snapshot.meta.index
        drop = index - self.snapshot_index
        if drop <= 0 or index > self.last_index:
            raise StorageContractError(f"compaction at {index} does not fit the durable log")
        del self.entries[:drop]
        self.snapshot = snapshot
        self.snapshot_terms = terms[:index]

    def initial_state(self) -> InitialState:
        return InitialState(self.hard_state, self.snapshot, list(self.entries))
