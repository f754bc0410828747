"""In-memory twins of the node's storage and transport, for fast tests of the driver.

``MemoryStorage`` keeps what ``persist`` was given (and survives a node's restart if the test
keeps it); ``MemoryNetwork`` connects nodes of one event loop, delivering each message on a
later loop iteration, through the wire codec (so a node never shares objects with another);
``SilentTransport`` is a transport to peers that never answer (a test or benchmark plays the
leader by calling the node itself).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from raft3d.consensus.types import Entry, HardState, InitialState, Snapshot, SnapshotMeta
from raft3d.transport.proposals import PeerMessage, decode


@dataclass(frozen=True, slots=True)
class MemorySnapshotInfo:
    index: int
    term: int
    size: int
    created_at: float


class MemorySnapshotSink:
    """The twin of ``DurableStorage.open_local_snapshot``: the parts joined in memory."""

    def __init__(self, meta: SnapshotMeta, staged: dict[SnapshotMeta, bytes]) -> None:
        self._meta, self._staged = meta, staged
        self._parts: list[bytes] = []

    def write(self, part: bytes) -> None:
        self._parts.append(part)

    def finish(self) -> None:
        self._staged[self._meta] = b"".join(self._parts)

    def abort(self) -> None:
        self._parts = []


class MemoryStorage:
    """A ``raft3d.node.seams.Storage`` in memory."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []  # contiguous, right after the snapshot
        self.writes = 0
        self.closed = False
        self._snapshots: list[MemorySnapshotInfo] = []
        self._staged: dict[SnapshotMeta, bytes] = {}  # finished MemorySnapshotSinks

    def load(self) -> InitialState:
        self.closed = False
        return InitialState(self.hard_state, self.snapshot, list(self.entries))

    @property
    def snapshot_index(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.meta.index

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        self.writes += 1
        if snapshot is not None:
            self._keep(snapshot)
            self.entries = []
        if entries:
            first = entries[0].index
            offset = first - self.snapshot_index - 1
            if offset < 0 or offset > len(self.entries):
                raise ValueError(f"entries from {first} do not attach to the log")
            del self.entries[offset:]
            self.entries.extend(entries)
        if hard_state is not None:
            self.hard_state = hard_state

    def snapshot_data(self, index: int) -> bytes | None:
        """The in-memory twin of ``DurableStorage.snapshot_data``: the bytes themselves."""
        snapshot = self.snapshot
        return snapshot.data if snapshot is not None and snapshot.meta.index == index else None

    def stage_local_snapshot(self, snapshot: Snapshot) -> None:
        pass  # nothing to write ahead in memory

    def open_local_snapshot(self, meta: SnapshotMeta) -> MemorySnapshotSink:
        return MemorySnapshotSink(meta, self._staged)

    def commit_local_snapshot(self, meta: SnapshotMeta) -> None:
        self.save_local_snapshot(Snapshot(meta, self._staged.pop(meta)))

    def save_local_snapshot(self, snapshot: Snapshot) -> None:
        drop = snapshot.meta.index - self.snapshot_index
        self._keep(snapshot)
        del self.entries[: max(0, drop)]

    def _keep(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        meta = snapshot.meta
        info = MemorySnapshotInfo(meta.index, meta.term, len(snapshot.data), time.time())
        self._snapshots.insert(0, info)

    def first_index(self) -> int:
        return self.snapshot_index + 1

    def read_entries(self, after: int, limit: int) -> list[Entry]:
        start = max(0, after - self.snapshot_index)
        return self.entries[start : start + limit]

    def list_snapshots(self) -> list[MemorySnapshotInfo]:
        return list(self._snapshots)

    def latest_snapshot(self) -> Snapshot | None:
        return self.snapshot

    def close(self) -> None:
        self.closed = True


Receiver = Callable[[PeerMessage], None]
PeerChange = Callable[[str, bool], None]


class MemoryNetwork:
    """Nodes of one event loop; a link can be cut (both ways) and healed."""

    def __init__(self) -> None:
        self._up: dict[str, tuple[Receiver, PeerChange]] = {}
        self._cut: set[frozenset[str]] = set()

    def transport(
        self, node_id: str, receive: Receiver, peer_changed: PeerChange
    ) -> MemoryTransport:
        return MemoryTransport(self, node_id, receive, peer_changed)

    def linked(self, a: str, b: str) -> bool:
        return a in self._up and b in self._up and frozenset((a, b)) not in self._cut

    def cut(self, a: str, b: str) -> None:
        self._cut.add(frozenset((a, b)))
        self._tell(a, b, False)

    def heal(self, a: str, b: str) -> None:
        self._cut.discard(frozenset((a, b)))
        self._tell(a, b, self.linked(a, b))

    def _tell(self, a: str, b: str, up: bool) -> None:
        for one, other in ((a, b), (b, a)):
            if one in self._up:
                self._up[one][1](other, up)

    def _join(self, node_id: str, receive: Receiver, peer_changed: PeerChange) -> None:
        self._up[node_id] = (receive, peer_changed)
        for other in list(self._up):
            if other != node_id and self.linked(node_id, other):
                self._tell(node_id, other, True)

    def _leave(self, node_id: str) -> None:
        self._up.pop(node_id, None)
        for _, changed in list(self._up.values()):
            changed(node_id, False)

    def _deliver(self, msg: PeerMessage) -> bool:
        if not self.linked(msg.frm, msg.to):
            return False
        receive = self._up[msg.to][0]
        copy = decode(msg.to_wire())
        asyncio.get_running_loop().call_soon(receive, copy)
        return True


class MemoryTransport:
    """A ``raft3d.node.seams.Transport`` on a ``MemoryNetwork``."""

    def __init__(
        self, network: MemoryNetwork, node_id: str, receive: Receiver, peer_changed: PeerChange
    ) -> None:
        self._network = network
        self._node_id = node_id
        self._receive = receive
        self._peer_changed = peer_changed
        self._dropped: Counter[str] = Counter()
        self.sent = 0
        # None: every node of the network is a peer (until the driver says otherwise).
        self.links: set[str] | None = None

    async def start(self) -> None:
        self._network._join(self._node_id, self._receive, self._peer_changed)

    async def stop(self) -> None:
        self._network._leave(self._node_id)

    def send(self, msg: PeerMessage) -> bool:
        self.sent += 1
        if self.links is not None and msg.to not in self.links:
            self._dropped["unknown_peer"] += 1
            return False
        if not self._network._deliver(msg):
            self._dropped["unreachable"] += 1
            return False
        return True

    def flush(self) -> None:
        pass  # ``send`` hands every message to the network at once

    def reachable(self, peer: str) -> bool:
        linked = self.links is None or peer in self.links
        return linked and self._network.linked(self._node_id, peer)

    @property
    def peers(self) -> tuple[str, ...]:
        return () if self.links is None else tuple(sorted(self.links))

    def connect_peer(self, peer: str, raft_addr: str) -> bool:
        if self.links is None:
            self.links = set()
        self.links.add(peer)
        return True

    def drop_peer(self, peer: str) -> None:
        if self.links is not None:
            self.links.discard(peer)

    @property
    def dropped(self) -> Mapping[str, int]:
        return self._dropped


class SilentTransport:
    """A ``raft3d.node.seams.Transport`` to peers that never answer: it drops every message
    (a subclass may keep them) and reaches nobody."""

    def __init__(self) -> None:
        self.dropped: dict[str, int] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def send(self, msg: PeerMessage) -> bool:
        return False  # dropped: never delivered

    def flush(self) -> None:
        pass

    def reachable(self, peer: str) -> bool:
        return False

    @property
    def peers(self) -> tuple[str, ...]:
        return ()

    def connect_peer(self, peer: str, raft_addr: str) -> bool:
        return True

    def drop_peer(self, peer: str) -> None:
        pass
