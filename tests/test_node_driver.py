"""The node driver against real storage, as a single voter: proposals, read barriers,
snapshots, stop and restart (a follower of a scripted leader has a file of its own; the
nodes are described in ``tests.support.scripted``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest

from raft3d.node.errors import OutcomeUnknownError
from raft3d.node.wiring import build_node
from raft3d.storage import DurableStorage
from tests.support.fakes import single_voter_settings
from tests.support.scripted import (
    Node,
    RecordingStateMachine,
    gate,
    make_node,
    refuses_work,
)
from tests.support.waiting import eventually


@pytest.fixture
async def solo(tmp_path: Path) -> AsyncIterator[Node]:
    node = make_node(single_voter_settings(tmp_path), RecordingStateMachine())
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        yield node
    finally:
        await node.stop()


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


async def test_a_timed_out_proposal_is_forgotten_and_counted_and_its_entry_still_commits(
    solo: Node,
) -> None:
    disk = gate(solo)
    disk.close_gate()
    unknown = solo.counters.proposals["outcome_unknown"]
    try:
        with pytest.raises(TimeoutError, match=r"not seen to commit within 0\.2 s"):
            await solo.propose(b"late", 0.2)
        index = solo.core.last_index
        assert index not in solo.step.proposals  # nobody waits for it any more
        assert solo.counters.proposals["outcome_unknown"] == unknown + 1
    finally:
        disk.open_gate()
    await eventually(lambda: solo.applied_index >= index, 10, "the late entry to apply")
    assert solo.outcome(index) == (index, b"LATE")
    # The next proposal is not failed by the expired one's deadline.
    assert await solo.propose(b"next", 5.0) == (index + 1, b"NEXT")


async def test_a_cancelled_proposer_is_cancelled_not_timed_out_and_is_forgotten(
    solo: Node,
) -> None:
    disk = gate(solo)
    disk.close_gate()
    unknown = solo.counters.proposals["outcome_unknown"]
    try:
        waiting = asyncio.ensure_future(solo.propose(b"gone", 0.3))
        await eventually(lambda: len(solo.step.proposals) == 1, 5, "the proposal to wait")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(solo.step.proposals) == 0
        assert solo.counters.proposals["outcome_unknown"] == unknown
    finally:
        disk.open_gate()
