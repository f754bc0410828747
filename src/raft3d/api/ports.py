"""The one interface the HTTP layer needs from a Raft node.

The api package declares it (rather than importing the node driver) so that handlers can be
tested against a small in-process fake, and so that the node is free to change its internals.
The value shapes it returns are declared here too, as read-only protocols: the driver's frozen
dataclasses (``SnapshotInfo``, ``EventPage``, ``CommittedEvent``) satisfy them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from raft3d.node.status import Membership, NodeStatus

R_co = TypeVar("R_co", covariant=True)


class SnapshotFileInfo(Protocol):
    """One snapshot file a node holds."""

    @property
    def index(self) -> int: ...

    @property
    def term(self) -> int: ...

    @property
    def size(self) -> int:
        """Bytes on disk."""
        ...

    @property
    def created_at(self) -> float:
        """Unix seconds."""
        ...


class SnapshotMetaView(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def term(self) -> int: ...


class SnapshotView(Protocol):
    """A snapshot read from disk: its metadata and the state machine's bytes."""

    @property
    def meta(self) -> SnapshotMetaView: ...

    @property
    def data(self) -> bytes: ...


class CommittedEntry(Protocol[R_co]):
    """One committed, applied log entry and what applying it returned."""

    @property
    def index(self) -> int: ...

    @property
    def term(self) -> int: ...

    @property
    def is_noop(self) -> bool:
        """A leader's empty entry at the start of its term; ``data`` is then meaningless."""
        ...

    @property
    def conf_change(self) -> tuple[str, str] | None:
        """A membership change (``"add_learner"``, ``"promote"`` or ``"remove"``, node id);
        ``data`` is then not a farm command."""
        ...

    @property
    def data(self) -> bytes:
        """The encoded command (``raft3d.domain.commands.encode_command``)."""
        ...

    @property
    def outcome(self) -> R_co | None:
        """The state machine's result, None for a no-op."""
        ...


class EventPageView(Protocol[R_co]):
    @property
    def first_index(self) -> int:
        """Oldest index still held in the log: older entries were compacted into a snapshot."""
        ...

    @property
    def last_index(self) -> int:
        """Newest index applied on this node when the page was read."""
        ...

    @property
    def snapshot_index(self) -> int:
        """Index of the node's newest snapshot (0 when none)."""
        ...

    @property
    def events(self) -> Sequence[CommittedEntry[R_co]]: ...


class NodePort(Protocol[R_co]):
    """A node whose state machine's ``apply`` returns ``R_co``."""

    @property
    def node_id(self) -> str: ...

    @property
    def applied_index(self) -> int: ...

    async def propose(self, command: bytes, timeout: float) -> R_co:
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

    @property
    def suffrage(self) -> str:
        """``status().suffrage`` without building the rest of the status (asked per write)."""
        ...

    @property
    def restoring(self) -> bool:
        """The node's state is being replaced from a snapshot (a follower catching up, or a
        start from a big snapshot): what it holds now is stale, maybe empty."""
        ...

    @property
    def halted_reason(self) -> str | None:
        """Why the node halted (disk error, corrupt entry); None while it runs normally.

        A halted node serves nothing but this fact until its process exits.
        """
        ...

    def subscribe(self, listener: Callable[[CommittedEntry[R_co]], None]) -> Callable[[], None]:
        """Call ``listener`` with each entry as it is applied, from then on, in log order.

        The listener runs on the node's apply path: it must return at once and never raise.
        Returns the function that unsubscribes it.
        """
        ...

    def events(self, after: int, limit: int) -> EventPageView[R_co]:
        """Up to ``limit`` applied entries with index > ``after``, oldest first.

        Raises ``NodeStoppedError`` when the node is stopping or halted.
        """
        ...

    def snapshots(self) -> Sequence[SnapshotFileInfo]:
        """This node's snapshot files, newest first."""
        ...

    def latest_snapshot(self) -> SnapshotView | None:
        """The newest snapshot, read and verified from disk; None when there is none.

        Safe to call from a worker thread (it reads a file that may be large). Raises
        ``raft3d.node.errors.StorageError`` when the file cannot be read or fails verification.
        """
        ...

    async def take_snapshot(self) -> int:
        """Snapshot this node's state now, unless nothing was applied since the last one.

        Returns the index of the newest snapshot (0 when there is none). Raises
        ``NodeStoppedError`` when the node is stopping or halted.
        """
        ...

    # -- membership (SPEC §6) -----------------------------------------------------------
    # The async ones raise ``NotLeaderError(leader_id)`` on a non-leader (the HTTP layer then
    # forwards the request like a write), ``NodeStoppedError`` when stopping, ``TimeoutError``
    # when the change was not seen to commit in time, and the ``ConfChangeError`` family of
    # ``raft3d.node.errors`` when the change is refused.

    def membership(self) -> Membership:
        """The configuration in effect on this node (any node, its own view)."""
        ...

    async def add_member(
        self,
        node_id: str,
        raft_addr: str,
        http_addr: str,
        *,
        promote: bool = True,
        timeout: float | None = None,
    ) -> Membership:
        """Add ``node_id`` as a learner; return once that entry is committed (not when the
        learner is promoted, which happens by itself once it caught up if ``promote``)."""
        ...

    async def promote_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        """Make a learner a voter; refused while it has not caught up unless ``force``."""
        ...

    async def remove_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        """Remove a voter or learner (the leader itself too: it hands over once committed)."""
        ...

    async def transfer_leadership(
        self, target: str | None = None, *, timeout: float | None = None
    ) -> str:
        """Return the new leader's id once another voter leads (None: the most caught-up)."""
        ...
