"""The core's clock: ticks run when due, the loop wakes only for ticks that do something.

``TickClock`` against a fake loop (time is set by the test), then the real driver: an idle
leader wakes once per heartbeat, a follower once per election timeout, and a read request
that got no answer is still asked again although no tick wakes the loop for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from raft3d.consensus.types import Message, MsgType
from raft3d.node.ticking import MAX_CATCH_UP, TickClock
from tests.support.fakes import single_voter_settings
from tests.support.scripted import (
    FOLLOWER,
    LEADER,
    Node,
    RecordingStateMachine,
    append,
    follower_settings,
    make_node,
    sent,
)
from tests.support.waiting import eventually

TICK = 0.01


class FakeHandle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Only what TickClock uses: ``time`` and ``call_at``; timers run when the test says."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle(when, callback)
        self.timers.append(handle)
        return handle

    def pending(self) -> list[FakeHandle]:
        return [h for h in self.timers if not h.cancelled]

    def fire(self, at: float | None = None) -> None:
        """Run the one pending timer, at ``at`` (default: its due time)."""
        (handle,) = self.pending()
        handle.cancelled = True
        self.now = handle.when if at is None else at
        handle.callback()


class Counting:
    def __init__(self) -> None:
        self.ticks = 0
        self.due_calls = 0

    def tick(self) -> None:
        self.ticks += 1

    def on_due(self) -> None:
        self.due_calls += 1


def clock_on(loop: FakeLoop, counting: Counting) -> TickClock:
    clock = TickClock(TICK, counting.on_due)
    clock.start(loop, counting.tick)  # type: ignore[arg-type]
    return clock


def test_the_timer_is_set_for_the_due_tick_and_runs_every_tick_before_it() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(30)
    (handle,) = loop.pending()
    assert handle.when == pytest.approx(100.0 + 30 * TICK)
    loop.fire()
    assert counting.ticks == 30 and counting.due_calls == 1 and clock.wakeups == 1


def test_an_input_first_runs_the_ticks_that_came_due_since() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(30)
    loop.now += 12.5 * TICK
    assert clock.catch_up() == 12
    assert clock.catch_up() == 0  # nothing new is due
    loop.now += 0.6 * TICK
    assert clock.catch_up() == 1
    assert counting.due_calls == 0  # the timer is still pending, for tick 30


def test_an_earlier_deadline_replaces_the_timer_and_a_later_one_keeps_it() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(30)
    clock.arm(50)  # later: the pending timer stays (it re-arms when it fires)
    assert [h.when for h in loop.pending()] == [pytest.approx(100.0 + 30 * TICK)]
    clock.arm(5)
    assert [h.when for h in loop.pending()] == [pytest.approx(100.0 + 5 * TICK)]
    clock.arm(10, not_after=100.0 + 2.5 * TICK)
    assert [h.when for h in loop.pending()] == [pytest.approx(100.0 + 2.5 * TICK)]


def test_a_timer_that_fires_a_hair_early_still_runs_its_tick() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(3)
    loop.fire(at=100.0 + 3 * TICK - 0.0004)
    assert counting.ticks == 3


def test_after_a_stall_only_a_few_ticks_run_and_the_rest_is_skipped() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(30)
    loop.fire(at=100.0 + 30 * TICK + 1.0)  # the loop was held for a second
    assert counting.ticks == MAX_CATCH_UP
    # The skipped ticks stay skipped: the next input right after sees nothing more due.
    assert clock.catch_up() == 0
    loop.now += TICK
    assert clock.catch_up() == 1


def test_an_input_during_a_stall_runs_only_a_few_ticks_too() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(10)
    loop.now += 100 * TICK  # the timer, due at tick 10, could not run
    assert clock.catch_up() == MAX_CATCH_UP


def test_a_timer_a_little_late_is_no_stall() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(30)
    loop.fire(at=100.0 + 33 * TICK)
    assert counting.ticks == 33


def test_stop_cancels_the_timer() -> None:
    loop, counting = FakeLoop(), Counting()
    clock = clock_on(loop, counting)
    clock.arm(30)
    clock.stop()
    assert loop.pending() == []
    assert clock.catch_up() == 0


# --- the driver ---------------------------------------------------------------------------


@pytest.fixture
async def solo(tmp_path: Path) -> AsyncIterator[Node]:
    node = make_node(single_voter_settings(tmp_path), RecordingStateMachine())
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        yield node
    finally:
        await node.stop()


async def test_an_idle_leader_wakes_once_per_heartbeat_not_every_tick(solo: Node) -> None:
    clock = solo.clock
    heartbeat = solo.options.core.heartbeat_ticks
    assert heartbeat > 1
    ticks, wakeups = clock.ticks, clock.wakeups
    await eventually(lambda: clock.ticks - ticks >= 20 * heartbeat, 30, "a hundred ticks")
    woke = clock.wakeups - wakeups
    assert woke <= (clock.ticks - ticks) // heartbeat + 2
    assert solo.is_leader


@pytest.fixture
async def lone_follower(tmp_path: Path) -> AsyncIterator[Node]:
    """A voter of three whose peers never answer: it campaigns every election timeout."""
    settings = follower_settings(tmp_path, snapshot_threshold=0)
    raft = settings.raft_settings
    raft = replace(raft, election_timeout_ms=10 * raft.heartbeat_ms)
    node = make_node(replace(settings, raft_settings=raft), RecordingStateMachine())
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def test_a_follower_with_no_leader_wakes_once_per_election_timeout(
    lone_follower: Node,
) -> None:
    clock = lone_follower.clock
    election = lone_follower.options.core.election_ticks
    await eventually(lambda: clock.ticks >= 4 * election, 30, "four election timeouts")
    # Each timeout is randomized in [election, 2 * election): one wake-up each, give or take.
    assert clock.wakeups <= clock.ticks // election + 2
    campaigns = [m for m in sent(lone_follower) if m.type in (MsgType.PRE_VOTE, MsgType.VOTE)]
    assert campaigns, "it campaigned when its timeout came"


async def test_an_unanswered_read_index_is_asked_again_without_a_tick(tmp_path: Path) -> None:
    # An election timeout of 10 minutes: no tick in this test does anything, so only the
    # read retry can wake the loop to ask again.
    node = make_node(follower_settings(tmp_path, snapshot_threshold=0), RecordingStateMachine())
    await node.start()
    try:
        node.receive(Message(MsgType.HEARTBEAT, FOLLOWER, LEADER, 1, commit=0))  # a leader
        barrier = asyncio.create_task(node.read_barrier(30.0))
        out = sent(node)
        await eventually(
            lambda: sum(m.type is MsgType.READ_INDEX for m in out) >= 2, 10, "a second request"
        )
        assert all(m.to == LEADER for m in out if m.type is MsgType.READ_INDEX)
        assert not barrier.done()
        barrier.cancel()
    finally:
        await node.stop()


async def test_a_restarted_follower_applies_its_committed_log_before_any_timer(
    tmp_path: Path,
) -> None:
    # With a 10-minute election timeout no timer fires during the test: the start itself
    # must look at what the log holds committed.
    settings = follower_settings(tmp_path, snapshot_threshold=0)
    node = make_node(settings, RecordingStateMachine())
    await node.start()
    try:
        node.receive(append(0, 1, 3, commit=3))
        await eventually(lambda: node.applied_index == 3, 10, "entries 1..3 to apply")
    finally:
        await node.stop()
    machine = RecordingStateMachine()
    again = make_node(settings, machine)
    await again.start()
    try:
        await eventually(lambda: again.applied_index == 3, 10, "the log to apply on restart")
        assert machine.commands == [b"cmd-1", b"cmd-2", b"cmd-3"]
    finally:
        await again.stop()
