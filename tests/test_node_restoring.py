"""A big restore never holds the node's loop (issue 8): a follower installing a snapshot, and a
node starting from its own, restore in slices while the node answers its peers; entries
committed meanwhile are applied after the snapshot, in order; reads wait."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from raft3d.consensus.types import (
    HardState,
    Message,
    MsgType,
    Snapshot,
    SnapshotData,
    SnapshotMeta,
)
from raft3d.domain import CreatePrinter, FarmStateMachine, encode_command
from raft3d.domain.results import Result
from raft3d.node.driver import RaftNode
from raft3d.node.wiring import build_node
from raft3d.storage import DurableStorage
from raft3d.storage.snapshot_file import SnapshotFileData
from tests.support.fakes import single_voter_settings
from tests.support.scripted import (
    FOLLOWER,
    LEADER,
    VOTERS,
    Node,
    RecordingStateMachine,
    append,
    deliver,
    follower_settings,
    make_node,
    sent,
    whole_snapshot,
)
from tests.support.waiting import eventually


class HeldRestore(RecordingStateMachine):
    """Its restore takes as many steps as the test likes: it goes on while ``hold`` is set
    (each step lets the loop run other work), then replaces the state in a last step."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = True
        self.began = 0
        self.steps = 0
        self.sources: list[type] = []

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        self.began += 1
        self.sources.append(type(data))
        while self.hold:
            self.steps += 1
            yield
        self.restore(data[0 : len(data)])


@pytest.fixture
def held() -> HeldRestore:
    return HeldRestore()


@pytest.fixture
async def follower(tmp_path: Path, held: HeldRestore) -> AsyncIterator[Node]:
    node = make_node(follower_settings(tmp_path, snapshot_threshold=0), held)
    await node.start()
    try:
        yield node
    finally:
        held.hold = False
        await node.stop()


def restoring(node: Node) -> bool:
    return node.restoring


def answers(node: Node, kind: MsgType) -> list[Message]:
    return [m for m in sent(node) if m.type is kind]


async def test_a_follower_answers_heartbeats_and_appends_while_it_installs_a_snapshot(
    follower: Node, held: HeldRestore
) -> None:
    deliver(follower, whole_snapshot(20))
    await eventually(lambda: held.began == 1, 10, "the restore to begin")
    assert restoring(follower) and follower.halted is None

    # Between the restore's slices the node goes on serving Raft: a heartbeat is answered,
    # entries after the snapshot are persisted and acknowledged, the commit index follows.
    heartbeats = len(answers(follower, MsgType.HEARTBEAT_RESP))
    deliver(follower, Message(MsgType.HEARTBEAT, FOLLOWER, LEADER, 1, commit=20))
    await eventually(
        lambda: len(answers(follower, MsgType.HEARTBEAT_RESP)) > heartbeats, 10, "an answer"
    )
    deliver(follower, append(20, 21, 23, commit=23))
    await eventually(
        lambda: any(m.index == 23 and not m.reject for m in answers(follower, MsgType.APP_RESP)),
        10,
        "the appends to be acknowledged",
    )
    assert follower.core.commit_index == 23
    steps = held.steps
    await eventually(lambda: held.steps > steps, 10, "the restore to go on meanwhile")

    # Nothing is applied before the snapshot is in place; a read waits for it.
    assert held.commands == [] and follower.applied_index == 0
    barrier = asyncio.create_task(follower.read_barrier(30.0))
    await eventually(
        lambda: bool(answers(follower, MsgType.READ_INDEX)), 10, "a read index request"
    )
    context = answers(follower, MsgType.READ_INDEX)[0].context
    deliver(
        follower, Message(MsgType.READ_INDEX_RESP, FOLLOWER, LEADER, 1, index=23, context=context)
    )
    heartbeats = len(answers(follower, MsgType.HEARTBEAT_RESP))
    deliver(follower, Message(MsgType.HEARTBEAT, FOLLOWER, LEADER, 1, commit=23))
    await eventually(
        lambda: len(answers(follower, MsgType.HEARTBEAT_RESP)) > heartbeats, 10, "an answer"
    )
    assert not barrier.done()  # confirmed at 23, but 23 is not applied yet

    held.hold = False
    await asyncio.wait_for(barrier, 10)
    assert follower.applied_index == 23
    assert held.commands == [f"cmd-{i}".encode() for i in range(1, 24)]
    assert not restoring(follower)
    assert follower.status().snapshot_index == 20
    assert follower.outcome(23) == (23, b"CMD-23")


async def test_a_newer_snapshot_replaces_the_one_being_restored(
    follower: Node, held: HeldRestore
) -> None:
    deliver(follower, whole_snapshot(20))
    await eventually(lambda: held.began == 1, 10, "the first restore to begin")
    deliver(follower, whole_snapshot(30))
    await eventually(lambda: held.began == 2, 10, "the second restore to begin")
    held.hold = False
    await eventually(lambda: follower.applied_index == 30, 10, "the newer snapshot")
    await eventually(lambda: held.last_index == 30, 10, "the newer snapshot's state in place")
    assert len(held.commands) == 30
    assert follower.halted is None


async def test_a_node_starts_from_its_snapshot_in_slices_and_applies_its_log_after(
    tmp_path: Path,
) -> None:
    settings = single_voter_settings(tmp_path)
    first = RecordingStateMachine()
    node = make_node(settings, first)
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        await node.propose(b"one", 5.0)
        await node.take_snapshot()
        await node.propose(b"two", 5.0)
        applied = node.applied_index
    finally:
        await node.stop()

    held = HeldRestore()
    again = make_node(settings, held)
    await again.start()  # returns at once: the restore runs beside the node
    try:
        await eventually(lambda: held.steps > 1, 10, "the restore to run in steps")
        assert restoring(again) and again.applied_index == 0
        await eventually(lambda: again.is_leader, 10, "the node to campaign meanwhile")
        assert held.commands == []
        held.hold = False
        await eventually(lambda: again.applied_index >= applied, 10, "the snapshot, then the log")
        assert held.commands == [b"one", b"two"]
        assert again.outcome(applied) == (applied, b"TWO")
        assert not restoring(again)
    finally:
        held.hold = False
        await again.stop()


def _farm_snapshot(printers: int) -> bytes:
    machine = FarmStateMachine()
    for n in range(printers):
        command = CreatePrinter(id=f"p{n}", company="Prusa", model="MK4", idempotency=None)
        machine.apply(n + 1, encode_command(command))
    return machine.snapshot()


class Ticker:
    """Counts loop turns: a callback that reschedules itself every iteration of the loop."""

    def __init__(self) -> None:
        self.turns = 0
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        self.turns += 1
        self.start()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


class TurnsAtRestore(FarmStateMachine):
    """Notes the ticker's count as its restore begins and as the new state is installed."""

    def __init__(self, ticker: Ticker) -> None:
        super().__init__()
        self.ticker = ticker
        self.turns: list[int] = []
        self.sources: list[type] = []

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        self.turns.append(self.ticker.turns)
        self.sources.append(type(data))
        yield from super().restorer(data)
        self.turns.append(self.ticker.turns)

    def restore(self, data: bytes) -> None:  # the whole restore in one go (a thread did it)
        self.turns.append(self.ticker.turns)
        super().restore(data)
        self.turns.append(self.ticker.turns)


async def test_a_big_farm_restores_with_the_loop_running_between_its_slices(
    tmp_path: Path,
) -> None:
    data = _farm_snapshot(6000)  # about 40 ms of restore: many slices of at most 2 ms
    with DurableStorage(tmp_path) as storage:
        meta = SnapshotMeta(6000, 1, ("solo",))
        storage.persist(HardState(1, None, 6000), [], Snapshot(meta, data))
    ticker = Ticker()
    machine = TurnsAtRestore(ticker)
    node: RaftNode[Result] = build_node(single_voter_settings(tmp_path), machine)
    ticker.start()
    try:
        await node.start()
        try:
            await eventually(lambda: len(machine.turns) == 2, 30, "the restore to finish")
            began, ended = machine.turns
            # Other callbacks ran between the restore's slices, not only before and after it.
            assert ended - began >= 3
            # Read from the file: the bytes loaded at start are not held beside the state.
            assert machine.sources == [SnapshotFileData]
            assert machine.counts().printers == 6000
            await eventually(lambda: node.applied_index >= 6000, 10, "the node to apply it")
        finally:
            await node.stop()
    finally:
        ticker.stop()


# --- laggards are served from the snapshot file, not from bytes held in memory -------------


def served_bytes(node: RaftNode[Any]) -> bytes:
    served = node.core.served_snapshot
    assert served is not None
    data = served.data
    assert isinstance(data, SnapshotFileData)  # file-backed: the node holds no copy
    chunk = 4096
    return b"".join(data[offset : offset + chunk] for offset in range(0, len(data), chunk))


async def test_a_leader_serves_its_snapshot_from_the_file_after_taking_it_and_at_start(
    tmp_path: Path,
) -> None:
    settings = single_voter_settings(tmp_path)
    node: RaftNode[Result] = build_node(settings, FarmStateMachine())
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        for n in range(50):
            command = CreatePrinter(id=f"p{n}", company="Prusa", model="MK4", idempotency=None)
            await node.propose(encode_command(command), 5.0)
        index = await node.take_snapshot()
        on_disk = node.latest_snapshot()
        assert on_disk is not None and on_disk.meta.index == index
        assert served_bytes(node) == on_disk.data
    finally:
        await node.stop()
    again: RaftNode[Result] = build_node(settings, FarmStateMachine())
    await again.start()
    try:
        assert served_bytes(again) == on_disk.data
    finally:
        await again.stop()


async def test_a_follower_serves_a_received_snapshot_from_its_file(
    follower: Node, held: HeldRestore
) -> None:
    message = whole_snapshot(20)
    deliver(follower, message)
    await eventually(lambda: held.began == 1, 10, "the snapshot to be durable and restoring")
    assert served_bytes(follower) == message.data
    held.hold = False
    await eventually(lambda: follower.applied_index == 20, 10, "the restore")


def test_file_snapshot_data_reads_byte_ranges_and_outlives_the_file(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    with DurableStorage(tmp_path) as storage:
        meta = SnapshotMeta(7, 1, ("solo",))
        storage.persist(HardState(1, None, 7), [], Snapshot(meta, payload))
        data = storage.snapshot_data(7)
        assert storage.snapshot_data(8) is None
    assert data is not None and len(data) == len(payload)
    assert data[0:10] == payload[0:10]
    assert data[255_990:300_000] == payload[255_990:]
    assert data[5:5] == b""
    files = list(tmp_path.rglob("*.snap"))
    assert files
    for path in files:
        path.unlink()  # replaced by a newer one, say: the open descriptor still reads it
    assert data[1000:2000] == payload[1000:2000]
    data.close()


def _big_snapshot_in_chunks(index: int, chunks: int) -> list[Message]:
    """An InstallSnapshot transfer of about 1 MB in ``chunks`` parts, as a leader sends it:
    the follower assembles the snapshot's bytes itself (none of the messages holds them)."""
    state = msgpack.packb([index, [bytes([i % 251]) * 50_000 for i in range(1, index + 1)]])
    size = -(-len(state) // chunks)
    return [
        Message(
            MsgType.SNAP,
            FOLLOWER,
            LEADER,
            1,
            snapshot_meta=SnapshotMeta(index, 1, VOTERS),
            offset=offset,
            data=state[offset : offset + size],
            done=offset + size >= len(state),
        )
        for offset in range(0, len(state), size)
    ]


def _buffers_reachable(roots: list[object], length: int) -> list[object]:
    """Byte buffers of ``length`` reachable from ``roots`` (frames of tasks included)."""
    seen: set[int] = set()
    stack = list(roots)
    found: list[object] = []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        if isinstance(obj, (bytes, bytearray, memoryview)):
            if len(obj) == length:
                found.append(obj)
            continue
        stack.extend(gc.get_referents(obj))
        if isinstance(obj, asyncio.Task):
            coro = obj.get_coro()
            frame = getattr(coro, "cr_frame", None)
            if frame is not None:
                stack.extend(frame.f_locals.values())
    return found


async def test_a_follower_restores_a_received_snapshot_from_its_file_not_its_bytes(
    follower: Node, held: HeldRestore
) -> None:
    chunks = _big_snapshot_in_chunks(20, 4)
    length = sum(len(m.data) for m in chunks)
    for message in chunks:
        deliver(follower, message)
    chunks.clear()
    await eventually(lambda: held.began == 1, 10, "the snapshot to be durable and restoring")
    # Durable now: nothing in the node holds the received bytes (the core's receiver, the
    # Ready, the restore); the restore reads the file, as laggards are served from it.
    assert held.sources == [SnapshotFileData]
    assert _buffers_reachable([follower, *asyncio.all_tasks()], length) == []
    held.hold = False
    await eventually(lambda: follower.applied_index == 20, 10, "the restore")
    assert len(held.commands) == 20 and held.commands[19] == bytes([20]) * 50_000
