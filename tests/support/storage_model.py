"""An in-memory reference of what ``DurableStorage`` must hold, for storage tests.

It mirrors the documented semantics of ``persist`` and ``save_local_snapshot`` in the simplest
possible way, and reduces a state to a digest so that a crash test can compare the state a
writer announced with what a fresh instance recovers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from raft3d.consensus.types import Entry, HardState, Snapshot
from raft3d.storage import DurableStorage


@dataclass
class StorageModel:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)  # contiguous, after the snapshot

    @property
    def base_index(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.meta.index

    @property
    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.base_index

    def term_at(self, index: int) -> int:
        if self.snapshot is not None and index == self.snapshot.meta.index:
            return self.snapshot.meta.term
        return self.entries[index - self.base_index - 1].term

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if snapshot is not None:
            self.snapshot = snapshot
            self.entries = []
        if entries:
            first = entries[0].index
            self.entries = [e for e in self.entries if e.index < first] + list(entries)
        if hard_state is not None:
            self.hard_state = hard_state

    def save_local_snapshot(self, snapshot: Snapshot) -> None:
        cut = snapshot.meta.index
        self.snapshot = snapshot
        self.entries = [e for e in self.entries if e.index > cut]

    def digest(self) -> str:
        """A hash of everything a reader can observe: hard state, snapshot, log."""
        h = hashlib.sha256()
        hs = self.hard_state
        h.update(repr((hs.term, hs.vote, hs.commit)).encode())
        if self.snapshot is None:
            h.update(b"|no snapshot")
        else:
            meta = self.snapshot.meta
            h.update(repr(("snap", meta.index, meta.term, meta.voters)).encode())
            h.update(hashlib.sha256(self.snapshot.data).digest())
        for entry in self.entries:
            h.update(repr((entry.index, entry.term, int(entry.type), len(entry.data))).encode())
            h.update(entry.data)
        return h.hexdigest()

    @classmethod
    def read_from(cls, storage: DurableStorage) -> StorageModel:
        """What a freshly opened ``storage`` holds, as a model (load + the entry reads)."""
        state = storage.load()
        if storage.read_entries(storage.first_index() - 1, 1 << 62) != state.entries:
            raise AssertionError("read_entries disagrees with load() about the log")
        return cls(hard_state=state.hard_state, snapshot=state.snapshot, entries=state.entries)
