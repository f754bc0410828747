"""The one interface the HTTP layer needs from a Raft node.

The api package declares it (rather than importing the node driver) so that handlers can be
tested against a small in-process fake, and so that the node is free to change its internals.
"""

from __future__ import annotations

from typing import Protocol

from raft3d.node.status import NodeStatus


class NodePort(Protocol):
    @property
    def node_id(self) -> str: ...

    @property
    def applied_index(self) -> int: ...

    async def propose(self, command: bytes, timeout: float) -> object:
        """Replicate ``command`` and return what the state machine's ``apply`` returned for it.

        Raises ``NotLeaderError`` (with the leader's id, or None when none is known),
        ``OutcomeUnknownError``, ``EntryTooLargeError``, ``NodeStoppedError`` or
        ``TimeoutError`` (no quorum within ``timeout``; the entry may still commit later).
        """
        ...

    async def read_barrier(self, timeout: float) -> None:
        """Return once this node has applied everything committed when the call began.

        Works on followers too. Raises ``NoLeaderError`` or ``TimeoutError`` when no leader
        or no quorum confirms the read in time.
        """
        ...

    def status(self) -> NodeStatus: ...
