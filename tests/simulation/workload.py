"""Simulated clients: writes acknowledged when their proposer applies them, and ReadIndex
reads checked for linearizability against the writes acknowledged before they began.

The node's own bookkeeping (``raft3d.node.ready.ReadyStep``: ``Proposals`` and
``ReadBarriers``) decides when a write is acknowledged and when a read is released; the
workload only hands it waiters and checks what they are told.
"""

from __future__ import annotations

from raft3d.consensus import NodeId

from .checker import InvariantViolation


class WriteWaiter:
    """A client waiting for its write; acknowledged with the index it was applied at."""

    __slots__ = ("_done", "_workload")

    def __init__(self, workload: Workload) -> None:
        self._workload = workload
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, index: int, /) -> None:
        self._done = True
        self._workload.on_acknowledged(index)

    def set_exception(self, exception: BaseException, /) -> None:
        self._done = True  # outcome unknown: not acknowledged


class ReadWaiter:
    """A client's read: released at a read index, which must cover every write acknowledged
    to any client before the read began."""

    __slots__ = ("_acked_at_issue", "_done", "_node_id", "_workload")

    def __init__(self, workload: Workload, node_id: NodeId) -> None:
        self._workload = workload
        self._node_id = node_id
        self._acked_at_issue = workload.acked_index
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, index: int, /) -> None:
        self._done = True
        self._workload.reads_released += 1
        if index < self._acked_at_issue:
            raise InvariantViolation(
                f"ReadIndex linearizability: a read on {self._node_id} was released at "
                f"index {index}, but index {self._acked_at_issue} had been acknowledged "
                "to a client before the read began"
            )

    def set_exception(self, exception: BaseException, /) -> None:
        self._done = True


class Workload:
    def __init__(self) -> None:
        self.acked_index = 0
        self.proposed = 0
        self.acknowledged = 0
        self.reads_issued = 0
        self.reads_released = 0

    def write(self) -> WriteWaiter:
        self.proposed += 1
        return WriteWaiter(self)

    def read(self, node_id: NodeId) -> ReadWaiter:
        self.reads_issued += 1
        return ReadWaiter(self, node_id)

    def on_acknowledged(self, index: int) -> None:
        self.acknowledged += 1
        self.acked_index = max(self.acked_index, index)
