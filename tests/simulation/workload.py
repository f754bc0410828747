"""Simulated clients: writes acknowledged when their proposer applies them, and ReadIndex
reads checked for linearizability against the writes acknowledged before they began."""

from __future__ import annotations

from dataclasses import dataclass

from raft3d.consensus import Entry, NodeId, ReadState

from .checker import InvariantViolation


@dataclass
class _PendingRead:
    node_id: NodeId
    incarnation: int
    acked_at_issue: int  # highest index acknowledged to any client when the read began


class Workload:
    def __init__(self) -> None:
        self._writes: dict[tuple[NodeId, int, int], int] = {}  # (node, incarnation, index) -> term
        self._reads: dict[bytes, _PendingRead] = {}
        self.acked_index = 0
        self.proposed = 0
        self.acknowledged = 0
        self.reads_issued = 0
        self.reads_released = 0

    def on_propose(self, node_id: NodeId, incarnation: int, index: int, term: int) -> None:
        self.proposed += 1
        self._writes[(node_id, incarnation, index)] = term

    def on_apply(self, node_id: NodeId, incarnation: int, entry: Entry) -> bool:
        """Returns True if this apply acknowledged a client's write."""
        term = self._writes.pop((node_id, incarnation, entry.index), None)
        if term is None or term != entry.term:
            return False  # not proposed here, or overwritten by a newer leader: not acked
        self.acknowledged += 1
        self.acked_index = max(self.acked_index, entry.index)
        return True

    def on_read_issued(self, context: bytes, node_id: NodeId, incarnation: int) -> None:
        self.reads_issued += 1
        self._reads[context] = _PendingRead(node_id, incarnation, self.acked_index)

    def on_read_state(self, node_id: NodeId, incarnation: int, state: ReadState) -> None:
        read = self._reads.get(state.context)
        if read is None or (read.node_id, read.incarnation) != (node_id, incarnation):
            return  # a duplicated answer (the network duplicates messages): already served
        del self._reads[state.context]
        self.reads_released += 1
        if state.index < read.acked_at_issue:
            raise InvariantViolation(
                f"ReadIndex linearizability: read {state.context!r} on {node_id} released at "
                f"index {state.index}, but index {read.acked_at_issue} had been acknowledged "
                "to a client before the read began"
            )
