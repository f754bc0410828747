"""Event-loop lag: how late the loop runs a callback it was asked to run at a given time.

The node is one asyncio loop for HTTP, Raft and apply, so anything that holds it (a big
encode, a long apply batch, a blocking call) delays heartbeats and every other request.
``LoopLagMonitor`` schedules a callback every ``interval_s`` and records how late it ran in
the ``raft3d_event_loop_lag_seconds`` histogram; a single delay above ``warn_s`` is logged
as a warning with its length and the CPU time the loop's thread used meanwhile: a delay far
longer than that CPU time is time the OS gave other processes (or another thread held the
GIL), not a step of ours.

An idle node has nothing that could hold its loop, and waking it 20 times a second only to
find that out would be most of what it costs: when the loop thread used less than
``idle_cpu_share`` of the last interval and nothing called ``poke`` (the HTTP server does on
every request), the next sample comes after ``idle_interval_s`` instead. The first request,
or a busy loop at that sample, brings the short interval back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Histogram

log = logging.getLogger("raft3d.loop")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LoopLagMonitor:
    def __init__(
        self,
        *,
        interval_s: float = 0.05,
        warn_s: float = 0.1,
        idle_interval_s: float = 1.0,
        idle_cpu_share: float = 0.02,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.interval_s = interval_s
        self.warn_s = warn_s
        self.idle_interval_s = max(interval_s, idle_interval_s)
        self.idle_cpu_share = idle_cpu_share
        self._cpu = cpu_clock  # CPU seconds of the loop's thread (a twin in tests)
        # Not in any registry yet: the app adds it to its own (see create_app's collectors).
        self.histogram = Histogram(
            "raft3d_event_loop_lag_seconds",
            "How late the event loop ran a timer callback (time the loop was held)",
            buckets=BUCKETS,
            registry=None,
        )
        self.max_lag_s = 0.0
        self.idle = False  # sampling at idle_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._poked = False
        self._last = 0.0  # loop time and loop-thread CPU time of the last sample
        self._last_cpu = 0.0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._last, self._last_cpu = self._loop.time(), self._cpu()
        self._schedule(self._last, self.interval_s)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def poke(self) -> None:
        """Work arrived that may hold the loop: sample at the short interval from now on."""
        if self._poked:
            return
        self._poked = True
        if self.idle and self._handle is not None and self._loop is not None:
            self.idle = False
            now = self._loop.time()
            if self._due > now + self.interval_s:
                self._handle.cancel()
                self._schedule(now, self.interval_s)

    def _schedule(self, now: float, interval: float) -> None:
        assert self._loop is not None
        self._due = now + interval
        self._handle = self._loop.call_at(self._due, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        lag = max(0.0, now - self._due)
        self.histogram.observe(lag)
        self.max_lag_s = max(self.max_lag_s, lag)
        if lag > self.warn_s:
            log.warning(
                "event loop held for %.0f ms (one step ran that long; the loop thread used "
                "%.0f ms of CPU meanwhile)",
                lag * 1000,
                (self._cpu() - self._last_cpu) * 1000,
            )
        cpu = self._cpu()  # this callback runs on the loop's thread
        busy = self._poked or cpu - self._last_cpu > self.idle_cpu_share * (now - self._last)
        self._poked = False
        self._last, self._last_cpu = now, cpu
        self.idle = not busy
        self._schedule(now, self.interval_s if busy else self.idle_interval_s)
