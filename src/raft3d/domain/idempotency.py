"""Results remembered under clients' idempotency keys, bounded, oldest evicted first.

The table is part of the replicated state: every replica inserts the same keys in log order
and evicts the same ones, and snapshots carry it, so a retry gets the same answer from any node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from raft3d.domain.persistent import FrozenView, OrderedPMap
from raft3d.domain.results import Result, detached


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    fingerprint: str
    result: Result  # as first returned, never marked replayed


class IdempotencyTable:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"idempotency capacity must be positive, got {capacity}")
        self._capacity = capacity
        # Popping the oldest is O(1); a frozen view (for snapshots) is O(1) too.
        self._records: OrderedPMap[str, IdempotencyRecord] = OrderedPMap()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> IdempotencyRecord | None:
        return self._records.get(key)

    def remember(self, key: str, fingerprint: str, result: Result) -> None:
        """Record a first answer for ``key``, evicting the oldest keys beyond capacity.

        A key is remembered once: a lookup hit (replay or reuse) must not re-insert it, so
        eviction order stays the order in which keys first entered the log.
        """
        if key in self._records:
            raise ValueError(f"idempotency key {key!r} is already recorded")
        self._records[key] = IdempotencyRecord(fingerprint, detached(result))
        while len(self._records) > self._capacity:
            self._records.pop_oldest()

    def records(self) -> Iterator[tuple[str, IdempotencyRecord]]:
        """All records, oldest first."""
        return iter(self._records.items())

    def view(self) -> FrozenView[str, IdempotencyRecord]:
        """O(1) frozen picture of every record, oldest first."""
        return self._records.view()
