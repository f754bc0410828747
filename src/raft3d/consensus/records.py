"""The records the Raft core keeps and persists: log entries, the hard state, cluster
configurations and snapshots. Plain values with opaque ``bytes`` payloads: nothing here knows
what an entry means to the application. ``types`` re-exports them all.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

NodeId = str


class EntryType(enum.IntEnum):
    NORMAL = 0  # application command (opaque bytes)
    NOOP = 1  # appended by every new leader at the start of its term; data is empty
    CONF_CHANGE = 2  # a membership change (``membership.encode_conf_entry``)


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    data: bytes = b""
    type: EntryType = EntryType.NORMAL

    def size(self) -> int:
        """Approximate encoded size, used for the per-message byte cap."""
        return len(self.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: NodeId | None = None
    commit: int = 0


Contexts = tuple[tuple[NodeId, bytes], ...]


@dataclass(frozen=True, slots=True)
class ConfState:
    """One cluster configuration. Learners receive the log but never vote or count toward a
    quorum; ``manual`` lists the learners the leader does not promote automatically.
    ``contexts`` holds an opaque blob per member (the driver keeps each member's addresses
    there), as (node id, context) pairs sorted by node id; the core never reads them. An
    empty context is not stored: a member without one reads as b""."""

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()
    manual: tuple[NodeId, ...] = ()
    contexts: Contexts = ()

    def context_of(self, node: NodeId) -> bytes:
        """The member's context (b"" if it has none)."""
        for member, context in self.contexts:
            if member == node:
                return context
        return b""

    def with_context(self, node: NodeId, context: bytes) -> Contexts:
        """``contexts`` with ``node``'s set to ``context`` (kept sorted by node id)."""
        return sort_contexts((*self.without_context(node), (node, context)))

    def without_context(self, node: NodeId) -> Contexts:
        return tuple(item for item in self.contexts if item[0] != node)

    def is_voter(self, node: NodeId) -> bool:
        return node in self.voters

    def is_member(self, node: NodeId) -> bool:
        return node in self.voters or node in self.learners

    @property
    def members(self) -> tuple[NodeId, ...]:
        return self.voters + self.learners

    def quorum(self) -> int:
        """Strict majority of the voters."""
        return len(self.voters) // 2 + 1


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0  # last log index the snapshot includes
    term: int = 0  # term of that entry
    voters: tuple[NodeId, ...] = ()  # cluster configuration at ``index``
    learners: tuple[NodeId, ...] = ()
    manual: tuple[NodeId, ...] = ()  # learners not promoted automatically
    contexts: Contexts = ()  # each member's opaque context, sorted by node id

    @property
    def conf_state(self) -> ConfState:
        return ConfState(self.voters, self.learners, self.manual, self.contexts)

    @classmethod
    def of(cls, index: int, term: int, conf: ConfState) -> SnapshotMeta:
        return cls(index, term, conf.voters, conf.learners, conf.manual, conf.contexts)


def sort_contexts(items: Iterable[tuple[NodeId, bytes]]) -> Contexts:
    """Contexts in their canonical order (by node id), one per node, empty ones left out."""
    return tuple(sorted((node, ctx) for node, ctx in dict(items).items() if ctx))


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


class SnapshotData(Protocol):
    """A snapshot's data read by byte range: ``bytes`` (in memory: the simulation, a snapshot
    not yet durable), or a view of its durable file read chunk by chunk, so that a leader
    serving laggards does not hold the whole snapshot in memory (``RaftCore.serve_from``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ServedSnapshot:
    """The snapshot the core sends laggards (InstallSnapshot chunks)."""

    meta: SnapshotMeta
    data: SnapshotData

    @classmethod
    def of(cls, snapshot: Snapshot) -> ServedSnapshot:
        return cls(snapshot.meta, snapshot.data)
