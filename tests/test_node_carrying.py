"""The order in which the driver carries out a Ready, as seen from its seams: a leader's
replication messages are written before its own disk write begins (the followers' fsyncs
overlap the leader's), and a Ready with nothing to write answers its proposers before the
commit index goes out to the followers."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator, Sequence

import pytest

from raft3d.consensus.types import Entry, HardState, Message, MsgType, Snapshot
from raft3d.node.driver import RaftNode
from raft3d.node.memory import MemoryNetwork, MemoryStorage, MemoryTransport
from raft3d.node.options import NodeOptions
from raft3d.node.wiring import core_config
from tests.support.machines import EagerCapture, KeptOutcomes
from tests.support.settings import FAST_RAFT
from tests.support.waiting import eventually

Event = tuple[str, str, object]  # (node, what, detail)


class Journal:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()  # persist runs on the disk thread

    def add(self, node: str, what: str, detail: object = None) -> None:
        with self._lock:
            self.events.append((node, what, detail))

    def of(self, node: str) -> list[tuple[str, object]]:
        with self._lock:
            return [(what, detail) for n, what, detail in self.events if n == node]


class JournalTransport(MemoryTransport):
    journal: Journal

    def send(self, msg: Message) -> None:
        if msg.type is MsgType.APP:
            last = msg.entries[-1].index if msg.entries else None
            self.journal.add(self._node_id, "send APP", (last, msg.commit))
        super().send(msg)

    def flush(self) -> None:
        self.journal.add(self._node_id, "flush")


class JournalStorage(MemoryStorage):
    def __init__(self, node: str, journal: Journal) -> None:
        super().__init__()
        self._node = node
        self._journal = journal

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if entries:
            self._journal.add(self._node, "persist", entries[-1].index)
        super().persist(hard_state, entries, snapshot)


class Echo(KeptOutcomes[int]):
    def __init__(self, node: str, journal: Journal) -> None:
        super().__init__()
        self._node = node
        self._journal = journal

    def apply(self, index: int, data: bytes) -> int:
        self._journal.add(self._node, "apply", index)
        return self.keep(index, index)

    def capture(self) -> EagerCapture:
        return EagerCapture(b"")

    def restore(self, data: bytes) -> None:
        pass


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[dict[str, RaftNode[int]], Journal]]:
    journal = Journal()
    network = MemoryNetwork()
    voters = ("a", "b", "c")
    built: dict[str, RaftNode[int]] = {}
    for k, node_id in enumerate(voters):
        options = NodeOptions(
            core=core_config(node_id, voters, FAST_RAFT),
            tick_s=FAST_RAFT.tick_ms / 1000,
            snapshot_threshold=0,
            default_timeout_s=5.0,
        )

        def receive(msg: Message, node_id: str = node_id) -> None:
            built[node_id].receive(msg)

        def changed(peer: str, up: bool, node_id: str = node_id) -> None:
            built[node_id].peer_changed(peer, up)

        transport = JournalTransport(network, node_id, receive, changed)
        transport.journal = journal
        built[node_id] = RaftNode(
            options,
            JournalStorage(node_id, journal),
            transport,
            Echo(node_id, journal),
            rng=random.Random(k),
        )
    for node in built.values():
        await node.start()
    try:
        yield built, journal
    finally:
        for node in built.values():
            await node.stop()


async def leader_of(nodes: dict[str, RaftNode[int]]) -> RaftNode[int]:
    await eventually(lambda: sum(n.is_leader for n in nodes.values()) == 1, 10, "one leader")
    return next(n for n in nodes.values() if n.is_leader)


async def test_the_leader_writes_its_appends_out_before_its_own_disk_write(
    nodes: tuple[dict[str, RaftNode[int]], Journal],
) -> None:
    built, journal = nodes
    leader = await leader_of(built)
    indexes = [await leader.propose(b"x%d" % i) for i in range(5)]
    events = journal.of(leader.node_id)
    for index in indexes:
        persisted = events.index(("persist", index))
        before = events[:persisted]
        sent = [i for i, (what, detail) in enumerate(before) if what == "send APP"
                and isinstance(detail, tuple) and detail[0] == index]  # fmt: skip
        assert sent, f"no APP with entry {index} before the leader's write of it"
        assert ("flush", None) in before[sent[-1] :], (
            f"the APPs with entry {index} were still queued when the leader's write began"
        )


async def test_a_commit_is_answered_before_the_commit_index_goes_out(
    nodes: tuple[dict[str, RaftNode[int]], Journal],
) -> None:
    built, journal = nodes
    leader = await leader_of(built)
    indexes = [await leader.propose(b"y%d" % i) for i in range(5)]
    events = journal.of(leader.node_id)
    for index in indexes:
        applied = events.index(("apply", index))
        first_commit = next(
            i for i, (what, detail) in enumerate(events)
            if what == "send APP" and isinstance(detail, tuple) and detail[1] >= index
        )  # fmt: skip
        assert applied < first_commit, (
            f"entry {index}: the commit index went out before the entry was applied here"
        )
