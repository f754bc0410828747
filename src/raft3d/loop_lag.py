"""Event-loop lag: how late the loop runs a callback it was asked to run at a given time.

The node is one asyncio loop for HTTP, Raft and apply, so anything that holds it (a big
encode, a long apply batch, a blocking call) delays heartbeats and every other request.
``LoopLagMonitor`` schedules a callback every ``interval_s`` and records how late it ran in
the ``raft3d_event_loop_lag_seconds`` histogram; a single delay above ``warn_s`` is logged
as a warning with its length and the CPU time the loop's thread used meanwhile: a delay far
longer than that CPU time is time the OS gave other processes (or another thread held the
GIL), not a step of ours. The cost is one timer callback per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Histogram

log = logging.getLogger("raft3d.loop")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LoopLagMonitor:
    def __init__(self, *, interval_s: float = 0.05, warn_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.warn_s = warn_s
        # Not in any registry yet: the app adds it to its own (see create_app's collectors).
        self.histogram = Histogram(
            "raft3d_event_loop_lag_seconds",
            "How late the event loop ran a timer callback (time the loop was held)",
            buckets=BUCKETS,
            registry=None,
        )
        self.max_lag_s = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._cpu = 0.0  # the loop thread's CPU time when the pending callback was scheduled

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._schedule(self._loop.time())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.interval_s
        self._cpu = time.thread_time()
        self._handle = self._loop.call_at(self._due, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        lag = max(0.0, now - self._due)
        self.histogram.observe(lag)
        self.max_lag_s = max(self.max_lag_s, lag)
        if lag > self.warn_s:
            cpu = time.thread_time() - self._cpu
            log.warning(
                "event loop held for %.0f ms (one step ran that long; the loop thread used "
                "%.0f ms of CPU meanwhile)",
                lag * 1000,
                cpu * 1000,
            )
        self._schedule(now)
