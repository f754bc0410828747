"""What a leader knows about one follower's log, and how it paces replication to it.

The three states follow etcd-io/raft:

- PROBE: the leader does not know where the follower's log ends. It sends one APP at a time
  and waits for the answer (or the next heartbeat response) before sending another.
- REPLICATE: the follower is known to match up to ``match``; APPs are pipelined optimistically
  (``next`` moves ahead on send) with at most ``max_inflight`` unacknowledged messages.
- SNAPSHOT: the entries the follower needs are compacted away; the leader streams a snapshot
  chunk by chunk (one chunk in flight) and sends no APPs until the follower installed it.
"""

from __future__ import annotations

import enum
from collections import deque

from raft3d.consensus.types import ServedSnapshot


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """Last indexes of the APP messages sent but not yet acknowledged, oldest first."""

    __slots__ = ("_capacity", "_last_indexes")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._last_indexes: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._last_indexes)

    def full(self) -> bool:
        return len(self._last_indexes) >= self._capacity

    def add(self, last_index: int) -> None:
        self._last_indexes.append(last_index)

    def free_to(self, index: int) -> None:
        """An ack up to ``index`` covers every message that ended at or before it."""
        pending = self._last_indexes
        while pending and pending[0] <= index:
            pending.popleft()

    def free_first(self) -> None:
        if self._last_indexes:
            self._last_indexes.popleft()

    def reset(self) -> None:
        self._last_indexes.clear()


class Progress:
    __slots__ = (
        "chunk_heartbeats",
        "inflights",
        "match",
        "next",
        "probe_sent",
        "recent_active",
        "snap_offset",
        "snapshot",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.recent_active = False
        self.inflights = Inflights(max_inflight)
        self.snapshot: ServedSnapshot | None = None  # being streamed, in SNAPSHOT state
        self.snap_offset = 0  # next byte of ``snapshot`` the follower has asked for
        self.chunk_heartbeats = 0  # heartbeat intervals the chunk in flight went unanswered

    def is_paused(self) -> bool:
        """Whether the leader must hold back APP messages to this follower."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflights.reset()
        self.snapshot = None
        self.snap_offset = 0

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflights.reset()

    def become_snapshot(self, snapshot: ServedSnapshot) -> None:
        self.state = ProgressState.SNAPSHOT
        self.probe_sent = False
        self.inflights.reset()
        self.snapshot = snapshot
        self.snap_offset = 0

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged entries up to ``index``; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        if index + 1 > self.next:
            self.next = index + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower refused an APP whose previous entry was ``rejected``.

        ``match_hint`` is the last index the leader believes could still match (derived from
        the follower's conflict hint). Returns False for a stale rejection.
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.state is ProgressState.SNAPSHOT or self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True
