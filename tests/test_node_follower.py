"""The node driver against real storage, as the follower of a leader the test scripts: read
barriers, snapshots received while another waits, and deadlines (see
``tests.support.scripted``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from raft3d.consensus.types import (
    Message,
    MsgType,
)
from tests.support.scripted import (
    FOLLOWER,
    LEADER,
    Node,
    RecordingStateMachine,
    append,
    deliver,
    follower_settings,
    gate,
    make_node,
    sent,
    whole_snapshot,
)
from tests.support.waiting import eventually


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


async def test_a_read_barrier_past_its_deadline_is_a_timeout(follower: Node) -> None:
    # A follower that never hears from a leader cannot confirm a read index.
    with pytest.raises(TimeoutError):
        await follower.read_barrier(0.2)
