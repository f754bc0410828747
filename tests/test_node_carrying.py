"""The order in which the driver carries out a Ready, as seen from its seams: a leader's
replication messages are written before its own disk write begins (the followers' fsyncs
overlap the leader's), and a Ready with nothing to write answers its proposers before the
commit index goes out to the followers."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import Any

import pytest

from raft3d.consensus.types import Entry, Message, MsgType, SnapshotData
from raft3d.node.disk import DiskThread
from raft3d.node.driver import RaftNode
from raft3d.node.memory import MemoryNetwork, MemoryStorage, MemoryTransport
from raft3d.node.options import NodeOptions
from raft3d.node.wiring import core_config
from raft3d.transport.proposals import PeerMessage
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
    """Writes what is sent at the end of the loop's turn, or at ``flush``, as the real
    transport does; the journal has each APP when it is written ("wire APP")."""

    journal: Journal
    _unwritten: list[PeerMessage]

    def send(self, msg: PeerMessage) -> bool:
        if not getattr(self, "_unwritten", None):
            self._unwritten = []
            asyncio.get_running_loop().call_soon(self.flush)
        self._unwritten.append(msg)
        return True

    def flush(self) -> None:
        unwritten, self._unwritten = getattr(self, "_unwritten", []), []
        for msg in unwritten:
            if isinstance(msg, Message) and msg.type is MsgType.APP:
                last = msg.entries[-1].index if msg.entries else None
                self.journal.add(self._node_id, "wire APP", (last, msg.commit))
            super().send(msg)


class JournalStorage(MemoryStorage):
    """Journals each write as it is handed to the disk thread ("persist"): see
    ``journal_handovers``."""

    def __init__(self, node: str, journal: Journal) -> None:
        super().__init__()
        self.node = node
        self.journal = journal


def journal_handovers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Journal every ``JournalStorage.persist`` when the loop hands it to the disk thread
    (when it starts on the thread is up to the scheduler)."""
    handover = DiskThread.run

    def run(disk: DiskThread, func: Callable[..., Any], *args: Any) -> Any:
        storage = getattr(func, "__self__", None)
        if isinstance(storage, JournalStorage) and getattr(func, "__name__", "") == "persist":
            entries: Sequence[Entry] = args[1]
            if entries:
                storage.journal.add(storage.node, "persist", entries[-1].index)
        return handover(disk, func, *args)

    monkeypatch.setattr(DiskThread, "run", run)


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

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # nothing to restore: the tests take no snapshot


@pytest.fixture
async def nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[dict[str, RaftNode[int]], Journal]]:
    journal = Journal()
    journal_handovers(monkeypatch)
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

        def receive(msg: PeerMessage, node_id: str = node_id) -> None:
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
    # Once the followers acknowledged the leader's first entries (until then it probes them
    # and holds appends back), every proposal's APPs go out with its own write.
    await leader.propose(b"warm-up")
    indexes = [await leader.propose(b"x%d" % i) for i in range(5)]
    events = journal.of(leader.node_id)
    for index in indexes:
        persisted = events.index(("persist", index))
        written = [detail for what, detail in events[:persisted] if what == "wire APP"
                   and isinstance(detail, tuple) and detail[0] == index]  # fmt: skip
        assert written, (
            f"the APPs with entry {index} were still queued when the leader's write began"
        )


async def test_a_commit_is_answered_before_the_commit_index_goes_out(
    nodes: tuple[dict[str, RaftNode[int]], Journal],
) -> None:
    built, journal = nodes
    leader = await leader_of(built)
    indexes = []
    for i in range(5):
        index = await leader.propose(b"y%d" % i)  # Echo answers with the index
        journal.add(leader.node_id, "answered", index)
        indexes.append(index)

    def commit_written(index: int) -> bool:
        return any(
            what == "wire APP" and isinstance(detail, tuple) and detail[1] >= index
            for what, detail in journal.of(leader.node_id)
        )

    await eventually(lambda: commit_written(indexes[-1]), 5, "the last commit index written")
    events = journal.of(leader.node_id)
    for index in indexes:
        answered = events.index(("answered", index))
        first_commit = next(
            i for i, (what, detail) in enumerate(events)
            if what == "wire APP" and isinstance(detail, tuple) and detail[1] >= index
        )  # fmt: skip
        assert answered < first_commit, (
            f"entry {index}: the commit index was written out before its proposer was answered"
        )
