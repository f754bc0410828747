"""The Raft core's clock on the event loop: ticks are run when they are due, not every tick.

The core counts time in ticks (``tick_s`` each) and says how many ticks may pass before one
does more than count (``RaftCore.ticks_until_due``: the next heartbeat, election timeout,
quorum check). ``TickClock`` keeps the wall-clock time of every tick, but the loop only
wakes for the due one: until then, nothing would happen anyway. The ticks in between are
run just before the core is next used (a message, a proposal, the timer), so every input
sees the counters exactly as if the core had been ticked on time; an idle follower wakes
once per election timeout instead of a hundred times a second.

After a stall (the timer ran ``MAX_CATCH_UP`` ticks or more late: a long step on the loop,
a starved process) at most ``MAX_CATCH_UP`` ticks are run and the rest of the stall is
skipped, as a timer that fired every tick would: waking from a long pause must not look
like a long silence of the leader, or an unanswered quorum check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from raft3d.consensus import RaftCore
from raft3d.node.reads import ReadBarriers

MAX_CATCH_UP = 5


class TickClock:
    def __init__(self, tick_s: float, on_due: Callable[[], None]) -> None:
        """``on_due`` runs after the timer fired and the ticks due were run."""
        self.tick_s = tick_s
        self._on_due = on_due
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick: Callable[[], None] = lambda: None
        self._next_tick = 0.0  # loop time of the first tick not run yet
        self._handle: asyncio.TimerHandle | None = None
        self._due = float("inf")  # when the pending timer is to fire (inf: none pending)
        self.wakeups = 0  # times the timer fired
        self.ticks = 0  # ticks run

    def start(self, loop: asyncio.AbstractEventLoop, tick: Callable[[], None]) -> None:
        self._loop = loop
        self._tick = tick
        self._next_tick = loop.time() + self.tick_s

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._due = float("inf")
        self._loop = None

    def catch_up(self) -> int:
        """Run every tick due by now (before the core takes an input); returns how many."""
        loop = self._loop
        return 0 if loop is None else self._run_due(loop.time(), self._due)

    def _run_due(self, now: float, timer_due: float) -> int:
        if now < self._next_tick:
            return 0
        tick_s = self.tick_s
        count = int((now - self._next_tick) / tick_s + 1e-6) + 1  # 1e-6: float rounding
        if now - timer_due >= MAX_CATCH_UP * tick_s:
            count = min(count, MAX_CATCH_UP)  # a stall: skip the rest of it
        tick = self._tick
        for _ in range(count):
            tick()
        self.ticks += count
        self._next_tick += count * tick_s
        if self._next_tick <= now:
            self._next_tick = now + tick_s
        return count

    def arm(self, ticks: int, not_after: float = float("inf")) -> None:
        """Have the timer fire by the ``ticks``-th tick from now, and by loop time
        ``not_after``; a timer already set to fire sooner is kept (it re-arms when it fires)."""
        loop = self._loop
        if loop is None:
            return
        due = min(self._next_tick + (max(1, ticks) - 1) * self.tick_s, not_after)
        if self._handle is not None:
            if self._due <= due:
                return
            self._handle.cancel()
        self._due = due
        self._handle = loop.call_at(due, self._fire)

    def arm_for(self, core: RaftCore, reads: ReadBarriers) -> None:
        """Arm for the next tick of ``core`` that does more than count, or for the next
        retry of an unanswered read in ``reads``, whichever comes first."""
        loop = self._loop
        if loop is None:
            return
        not_after = float("inf")
        retry = reads.retry_due()  # on the monotonic clock
        if retry != float("inf"):
            # A hair after: the retry is for requests older than that time.
            not_after = loop.time() + (retry - time.monotonic()) + 1e-3
        self.arm(core.ticks_until_due(), not_after)

    def _fire(self) -> None:
        loop = self._loop
        if loop is None:
            return
        due, self._due, self._handle = self._due, float("inf"), None
        self.wakeups += 1
        # The loop's clock may read a hair before the due time it fired for.
        self._run_due(max(loop.time(), due), due)
        self._on_due()
