"""What the node driver is given rather than builds: its state machine, storage and transport.

``raft3d.node.wiring.build_node`` plugs in the real ones (SQLite and snapshot files, the TCP
transport); ``raft3d.node.memory`` has in-memory twins for fast tests.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Protocol, TypeVar

from raft3d.consensus.types import (
    Entry,
    HardState,
    InitialState,
    Snapshot,
    SnapshotData,
    SnapshotMeta,
)
from raft3d.transport.proposals import PeerMessage

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class StateCapture(Protocol):
    """A frozen picture of a state machine; ``encode`` may run on any thread.

    ``parts`` yields the same bytes as ``encode`` in pieces of a fraction of a millisecond
    of work each: the node encodes on its event loop, yielding it between pieces.
    """

    def encode(self) -> bytes: ...

    def parts(self) -> Iterator[bytes]: ...


class StateMachine(Protocol[R_co]):
    """The application. ``apply`` must be deterministic; its result goes to the proposer.

    ``capture`` runs on the event loop and must be cheap at any state size (O(1) for the
    farm: ``raft3d.domain.persistent``); its ``parts`` are encoded on the loop in slices.
    ``restore`` may run on a worker thread (never while ``apply`` runs); the node restores
    with ``restorer``, on its loop in slices (``raft3d.node.restoring``). The machine keeps
    each applied entry's outcome until ``forget_outcomes`` (called as the log is compacted)
    and carries the ones it holds in its snapshots, so every entry still in the log has its
    outcome, on every node, across restarts and snapshot installs.
    """

    def apply(self, index: int, data: bytes) -> R_co: ...

    def capture(self) -> StateCapture: ...

    def restore(self, data: bytes) -> None: ...

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        """``restore`` in steps of a fraction of a millisecond each; the state is replaced
        only as the last one ends (nothing changes if it fails or is closed before).
        ``data`` may be bytes or the snapshot's file, read by range."""
        ...

    def outcome(self, index: int) -> R_co | None: ...

    def forget_outcomes(self, through: int) -> None: ...


class Waiter(Protocol[T_contra]):
    """Someone waiting for a result: an ``asyncio.Future`` (or the simulation's stand-in)."""

    def done(self) -> bool: ...

    def set_result(self, result: T_contra, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class SnapshotRecord(Protocol):
    """One snapshot the storage holds."""

    @property
    def index(self) -> int: ...

    @property
    def term(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def created_at(self) -> float: ...


class SnapshotSink(Protocol):
    """A local snapshot's file written part by part as it is encoded (on one thread)."""

    def write(self, part: bytes) -> None: ...

    def finish(self) -> None:
        """Durable and staged: ``Storage.commit_local_snapshot`` may commit it."""
        ...

    def abort(self) -> None: ...


class Storage(Protocol):
    """Durable Raft state. ``persist`` and ``save_local_snapshot`` run on the driver's one
    disk thread, in submission order; everything else on the event loop."""

    def load(self) -> InitialState: ...

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Make all of it durable, atomically: a received snapshot replaces the log."""
        ...

    def stage_local_snapshot(self, snapshot: Snapshot) -> None:
        """Make ``snapshot``'s file durable ahead of ``save_local_snapshot`` (which then only
        commits it), on another thread than the disk thread: log writes do not wait for it."""
        ...

    def save_local_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` of our own state; the log up to it may then be dropped."""
        ...

    def open_local_snapshot(self, meta: SnapshotMeta) -> SnapshotSink:
        """``stage_local_snapshot`` without the whole data in hand: it is written part by part
        (on another thread than the disk thread), never held whole."""
        ...

    def commit_local_snapshot(self, meta: SnapshotMeta) -> None:
        """``save_local_snapshot`` of the snapshot a finished ``open_local_snapshot`` staged."""
        ...

    def snapshot_data(self, index: int) -> SnapshotData | None:
        """The durable data of the snapshot the log continues from, if it is at ``index``,
        readable by byte range without holding it all in memory (a file), for the core to
        serve laggards from; None if that snapshot is not the one at ``index``."""
        ...

    def first_index(self) -> int: ...

    def read_entries(self, after: int, limit: int) -> list[Entry]: ...

    def list_snapshots(self) -> Sequence[SnapshotRecord]: ...

    def latest_snapshot(self) -> Snapshot | None: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Peer messaging. Whoever builds it routes what arrives to ``RaftNode.receive`` and
    lost or regained connections to ``RaftNode.peer_changed``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def send(self, msg: PeerMessage) -> bool:
        """Queue ``msg``; never blocks. Delivery is best effort (Raft retries; a forwarded
        proposal whose answer is lost is in doubt). False: dropped at once (no such peer,
        its queue full), so certainly never delivered."""
        ...

    def flush(self) -> None:
        """Write what ``send`` queued now, not at the end of this turn of the loop (the
        driver calls it before a disk write its messages need not wait for)."""
        ...

    def reachable(self, peer: str) -> bool: ...

    @property
    def peers(self) -> tuple[str, ...]:
        """The peers linked now."""
        ...

    def connect_peer(self, peer: str, raft_addr: str) -> bool:
        """Link to ``peer`` at ``raft_addr`` ("host:port"; a linked peer is redialed there if
        it moved). False if it cannot be linked (no usable address)."""
        ...

    def drop_peer(self, peer: str) -> None:
        """Stop linking to ``peer``: its queue, connection and inbound connection close."""
        ...

    @property
    def dropped(self) -> Mapping[str, int]:
        """Messages, frames or connections dropped so far, by reason."""
        ...
