"""Leader-side bookkeeping of ReadIndex requests waiting for a quorum of heartbeat acks."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from raft3d.consensus import quorum
from raft3d.consensus.types import NodeId


@dataclass(slots=True)
class PendingRead:
    context: bytes
    index: int  # the leader's commit index when the request arrived
    requester: NodeId  # who gets the answer: the leader itself or a follower
    acks: set[NodeId] = field(default_factory=set)


class ReadQueue:
    """Requests in arrival order. A quorum of acks for a request's context proves the node was
    still leader after that request (and every earlier one) arrived, so all of them go out."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[bytes, PendingRead] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, read: PendingRead) -> bool:
        """Queue ``read``; False if a request with the same context is already pending."""
        if read.context in self._pending:
            return False
        self._pending[read.context] = read
        return True

    def last_context(self) -> bytes:
        """Context of the newest pending request (heartbeats carry it), or b""."""
        if not self._pending:
            return b""
        return next(reversed(self._pending))

    def ack(self, context: bytes, voter: NodeId, voters: Collection[NodeId]) -> list[PendingRead]:
        """Record ``voter``'s ack; return the requests released by it (those a majority of
        ``voters`` has now acknowledged), oldest first."""
        read = self._pending.get(context)
        if read is None:
            return []
        read.acks.add(voter)
        if not quorum.has_quorum(voters, read.acks):
            return []
        released: list[PendingRead] = []
        for ctx in list(self._pending):
            released.append(self._pending.pop(ctx))
            if ctx == context:
                break
        return released

    def clear(self) -> None:
        self._pending.clear()
