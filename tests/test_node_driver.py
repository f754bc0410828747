"""The node driver against real storage: proposals, read barriers, snapshots, stop.

Two kinds of node: a single voter (it elects itself and commits alone), and a follower whose
leader is scripted by the test: its peers do not exist, so the test hands it the leader's
messages (``RaftNode.receive``) and reads what it sends from the transport it was given
(``RecordingTransport``). Its storage is real storage behind a gate (``GatedStorage``), so
what happens while a write is held on the disk thread is exercised without relying on
timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest

from raft3d.config import Settings
from raft3d.consensus.types import (
    Entry,
    HardState,
    InitialState,
    Message,
    MsgType,
    Snapshot,
    SnapshotData,
    SnapshotMeta,
)
from raft3d.node.driver import RaftNode
from raft3d.node.errors import NodeStoppedError, OutcomeUnknownError
from raft3d.node.memory import SilentTransport
from raft3d.node.seams import SnapshotRecord, SnapshotSink
from raft3d.node.wiring import build_node, node_options
from raft3d.storage import DurableStorage
from raft3d.transport.proposals import PeerMessage
from tests.support.fakes import single_voter_settings
from tests.support.machines import EagerCapture, KeptOutcomes
from tests.support.settings import node_settings
from tests.support.waiting import eventually

LEADER = "a"
FOLLOWER = "b"
VOTERS = (LEADER, FOLLOWER, "c")

Node = RaftNode[tuple[int, bytes]]


class RecordingStateMachine(KeptOutcomes[tuple[int, bytes]]):
    """Applies by recording each command; ``apply`` returns a value derived from the input."""

    def __init__(self) -> None:
        super().__init__()
        self.last_index = 0
        self.commands: list[bytes] = []

    def apply(self, index: int, data: bytes) -> tuple[int, bytes]:
        self.last_index = index
        self.commands.append(data)
        return self.keep(index, (index, data.upper()))

    def capture(self) -> EagerCapture:
        return EagerCapture(self.snapshot())

    def snapshot(self) -> bytes:
        return msgpack.packb([self.last_index, self.commands])  # type: ignore[no-any-return]

    def restore(self, data: bytes) -> None:
        self.last_index, self.commands = msgpack.unpackb(data)

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # one step: a small state
        self.restore(data[0 : len(data)])


class GatedStorage:
    """Real storage whose ``persist`` can be held on the disk thread until released."""

    def __init__(self, inner: DurableStorage) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self._open = threading.Event()
        self._open.set()

    def close_gate(self) -> None:
        self.entered.clear()
        self._open.clear()

    def open_gate(self) -> None:
        self._open.set()

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if not self._open.is_set():
            self.entered.set()
            self._open.wait()
        self.inner.persist(hard_state, entries, snapshot)

    def load(self) -> InitialState:
        return self.inner.load()

    def stage_local_snapshot(self, snapshot: Snapshot) -> None:
        self.inner.stage_local_snapshot(snapshot)

    def snapshot_data(self, index: int) -> SnapshotData | None:
        return self.inner.snapshot_data(index)

    def open_local_snapshot(self, meta: SnapshotMeta) -> SnapshotSink:
        return self.inner.open_local_snapshot(meta)

    def commit_local_snapshot(self, meta: SnapshotMeta) -> None:
        self.inner.commit_local_snapshot(meta)

    def save_local_snapshot(self, snapshot: Snapshot) -> None:
        self.inner.save_local_snapshot(snapshot)

    def first_index(self) -> int:
        return self.inner.first_index()

    def read_entries(self, after: int, limit: int) -> list[Entry]:
        return self.inner.read_entries(after, limit)

    def list_snapshots(self) -> Sequence[SnapshotRecord]:
        return self.inner.list_snapshots()

    def latest_snapshot(self) -> Snapshot | None:
        return self.inner.latest_snapshot()

    def close(self) -> None:
        self.inner.close()


class RecordingTransport(SilentTransport):
    """Peers that never answer; what the node sends is kept in ``sent``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Message] = []

    def send(self, msg: PeerMessage) -> None:
        if type(msg) is Message:
            self.sent.append(msg)


def make_node(settings: Settings, machine: RecordingStateMachine) -> Node:
    storage = GatedStorage(DurableStorage(settings.data_dir))
    # No identity or amnesia stance: a blank follower the scripted leader appends to would
    # otherwise rightly take itself for a voter that lost its disk (see test_node_recovery).
    options = replace(node_options(settings), data_dir=None)
    return RaftNode(options, storage, RecordingTransport(), machine)


def gate(node: Node) -> GatedStorage:
    assert isinstance(node.storage, GatedStorage)
    return node.storage


def sent(node: Node) -> list[Message]:
    assert isinstance(node.transport, RecordingTransport)
    return node.transport.sent


def follower_settings(data_dir: Path, snapshot_threshold: int) -> Settings:
    """Node ``b`` of a three-voter cluster whose other members never answer.

    The election timeout is long so that the follower stays a follower of the scripted leader.
    """
    return node_settings(
        data_dir,
        FOLLOWER,
        VOTERS,
        election_timeout_ms=600_000,
        snapshot_threshold=snapshot_threshold,
    )


def append(prev_index: int, first: int, last: int, commit: int, term: int = 1) -> Message:
    entries = [Entry(i, term, f"cmd-{i}".encode()) for i in range(first, last + 1)]
    return Message(
        MsgType.APP,
        FOLLOWER,
        LEADER,
        term,
        log_term=term if prev_index else 0,
        index=prev_index,
        entries=entries,
        commit=commit,
    )


def whole_snapshot(index: int, term: int = 1) -> Message:
    """An InstallSnapshot transfer in one chunk: the state after commands 1..index."""
    state = msgpack.packb([index, [f"cmd-{i}".encode() for i in range(1, index + 1)]])
    return Message(
        MsgType.SNAP,
        FOLLOWER,
        LEADER,
        term,
        snapshot_meta=SnapshotMeta(index, term, VOTERS),
        offset=0,
        data=state,
        done=True,
    )


@pytest.fixture
async def solo(tmp_path: Path) -> AsyncIterator[Node]:
    node = make_node(single_voter_settings(tmp_path), RecordingStateMachine())
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        yield node
    finally:
        await node.stop()


@pytest.fixture
def machine() -> RecordingStateMachine:
    return RecordingStateMachine()


@pytest.fixture
async def follower(tmp_path: Path, machine: RecordingStateMachine) -> AsyncIterator[Node]:
    node = make_node(follower_settings(tmp_path, snapshot_threshold=5), machine)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def deliver(node: Node, msg: Message) -> None:
    node.receive(msg)


def refuses_work(node: Node) -> bool:
    try:
        node.events(0, 1)
    except NodeStoppedError:
        return True
    return False


# --- a single voter ---------------------------------------------------------------------------


async def test_a_proposal_resolves_with_the_state_machines_result(solo: Node) -> None:
    first = await solo.propose(b"print", 5.0)
    second = await solo.propose(b"pause", 5.0)
    index = solo.applied_index
    assert first == (index - 1, b"PRINT")
    assert second == (index, b"PAUSE")
    assert solo.outcome(index) == (index, b"PAUSE")


async def test_read_barrier_returns_once_the_commit_at_the_call_is_applied(
    solo: Node,
) -> None:
    await solo.propose(b"one", 5.0)
    commit_at_call = solo.core.commit_index
    await solo.read_barrier(5.0)
    assert solo.applied_index >= commit_at_call
    assert solo.status().applied_index >= commit_at_call


async def test_take_snapshot_returns_the_applied_index_and_lists_the_file(
    solo: Node,
) -> None:
    await solo.propose(b"one", 5.0)
    await solo.propose(b"two", 5.0)
    index = await solo.take_snapshot()
    assert index == solo.applied_index
    assert [s.index for s in solo.snapshots()][:1] == [index]
    latest = solo.latest_snapshot()
    assert latest is not None
    assert msgpack.unpackb(latest.data)[1][-2:] == [b"one", b"two"]
    # Nothing applied since: the same snapshot, no new file.
    assert await solo.take_snapshot() == index
    assert len(solo.snapshots()) == 1


async def test_stop_fails_a_pending_proposal_instead_of_leaving_it_waiting(solo: Node) -> None:
    disk = gate(solo)
    disk.close_gate()
    try:
        proposal = asyncio.create_task(solo.propose(b"late", 30.0))
        await eventually(disk.entered.is_set, 10, "the proposal's write to reach the disk")
        stopping = asyncio.create_task(solo.stop())
        await eventually(lambda: refuses_work(solo), 10, "the node to refuse new work")
    finally:
        disk.open_gate()
    # Its entry was written and may well commit: the honest answer is "outcome unknown".
    with pytest.raises(OutcomeUnknownError):
        await asyncio.wait_for(proposal, 10)
    await asyncio.wait_for(stopping, 15)


async def test_a_cancelled_proposal_is_forgotten_but_still_applied(solo: Node) -> None:
    disk = gate(solo)
    disk.close_gate()
    try:
        proposal = asyncio.create_task(solo.propose(b"abandoned", 30.0))
        await eventually(disk.entered.is_set, 10, "the proposal's write to reach the disk")
        index = solo.core.last_index
        proposal.cancel()
        with pytest.raises(asyncio.CancelledError):
            await proposal
        assert index not in solo.step.proposals  # nobody is left to read its result
    finally:
        disk.open_gate()
    await eventually(lambda: solo.applied_index >= index, 10, "the entry to be applied")
    assert solo.outcome(index) == (index, b"ABANDONED")


async def test_stop_of_a_node_never_started_releases_the_data_directory(tmp_path: Path) -> None:
    node = build_node(single_voter_settings(tmp_path), RecordingStateMachine())
    await node.stop()
    reopened = DurableStorage(tmp_path)  # takes the directory lock: it must be free again
    reopened.close()


async def test_a_restarted_node_recovers_its_applied_state(tmp_path: Path) -> None:
    node = build_node(single_voter_settings(tmp_path), RecordingStateMachine())
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        await node.propose(b"before-snapshot", 5.0)
        await node.take_snapshot()
        await node.propose(b"after-snapshot", 5.0)
        applied = node.applied_index
    finally:
        await node.stop()
    machine = RecordingStateMachine()
    again = build_node(single_voter_settings(tmp_path), machine)
    await again.start()
    try:
        await eventually(lambda: again.applied_index >= applied, 10, "the log to be replayed")
        assert machine.commands == [b"before-snapshot", b"after-snapshot"]
        assert again.outcome(applied) == (applied, b"AFTER-SNAPSHOT")
    finally:
        await again.stop()


# --- a follower of a scripted leader ------------------------------------------------------


async def test_follower_read_barrier_waits_for_the_leaders_read_index_to_apply(
    follower: Node, machine: RecordingStateMachine
) -> None:
    out = sent(follower)
    deliver(follower, append(0, 1, 3, commit=3))
    await eventually(lambda: follower.applied_index == 3, 10, "entries 1..3 to apply")

    barrier = asyncio.create_task(follower.read_barrier(30.0))
    await eventually(
        lambda: any(m.type is MsgType.READ_INDEX for m in out), 10, "a read index request"
    )
    request = next(m for m in out if m.type is MsgType.READ_INDEX)
    # The leader confirms index 5, which this follower has not even received yet.
    deliver(
        follower,
        Message(MsgType.READ_INDEX_RESP, FOLLOWER, LEADER, 1, index=5, context=request.context),
    )
    # A heartbeat behind it: once its answer is out, the read index answer was handled too.
    deliver(follower, Message(MsgType.HEARTBEAT, FOLLOWER, LEADER, 1, commit=3))
    await eventually(
        lambda: any(m.type is MsgType.HEARTBEAT_RESP for m in out), 10, "a heartbeat answer"
    )
    assert not barrier.done()

    deliver(follower, append(3, 4, 5, commit=5))
    await asyncio.wait_for(barrier, 10)
    assert follower.applied_index >= 5
    assert machine.commands[-2:] == [b"cmd-4", b"cmd-5"]


async def test_automatic_snapshot_while_a_received_snapshot_waits_to_install(
    follower: Node, machine: RecordingStateMachine
) -> None:
    """A snapshot from the leader arrives while a write is on the disk thread, and the entries
    that write carries take the follower past its snapshot threshold. The local snapshot would
    be of a state the received one replaces; the node must install the received one, not halt.
    """
    disk = gate(follower)
    disk.close_gate()
    try:
        deliver(follower, append(0, 1, 5, commit=5))
        await eventually(disk.entered.is_set, 10, "the entries' write to reach the disk")
        deliver(follower, whole_snapshot(20))
    finally:
        disk.open_gate()
    await eventually(
        lambda: follower.applied_index == 20 or follower.halted is not None,
        10,
        "the received snapshot to install",
    )
    assert follower.halted is None
    assert follower.status().snapshot_index == 20
    assert machine.last_index == 20
    assert [s.index for s in follower.snapshots()][:1] == [20]


async def test_take_snapshot_while_a_received_snapshot_waits_to_install(
    follower: Node, machine: RecordingStateMachine
) -> None:
    deliver(follower, append(0, 1, 3, commit=3))
    await eventually(lambda: follower.applied_index == 3, 10, "entries 1..3 to apply")
    deliver(follower, whole_snapshot(20))
    # Before the loop has handled it: the core already holds the leader's snapshot.
    index = await follower.take_snapshot()
    assert index <= 20
    await eventually(
        lambda: follower.applied_index == 20 or follower.halted is not None,
        10,
        "the received snapshot to install",
    )
    assert follower.halted is None
    assert machine.last_index == 20
    assert [s.index for s in follower.snapshots()][:1] == [20]


async def test_a_proposal_past_its_deadline_is_a_timeout_not_a_leadership_change(
    solo: Node,
) -> None:
    # Issue 8: the deadline passing was reported as "leadership changed, outcome unknown".
    disk = gate(solo)
    disk.close_gate()
    try:
        term = solo.core.term
        with pytest.raises(TimeoutError) as raised:
            await solo.propose(b"slow", 0.2)
        assert not isinstance(raised.value, OutcomeUnknownError)
        assert solo.is_leader and solo.core.term == term
    finally:
        disk.open_gate()


async def test_a_read_barrier_past_its_deadline_is_a_timeout(follower: Node) -> None:
    # A follower that never hears from a leader cannot confirm a read index.
    with pytest.raises(TimeoutError):
        await follower.read_barrier(0.2)
