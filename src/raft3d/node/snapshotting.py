"""Local snapshots, off the event loop: capture on the loop (O(1) for the farm), encode on a
thread of their own at the lowest CPU priority, write on the node's disk thread.

Once encoded, the core drops its log prefix (keeping the snapshot for laggards, and
``trailing_entries`` below it) and the disk thread writes the file and compacts storage,
which keeps the last ``snapshot_trailing_entries`` entries for event readers. A crash in
between recovers from the previous snapshot and the full log. One save runs at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from raft3d.consensus import RaftCore
from raft3d.node.heap import settle_long_lived
from raft3d.node.ready import NodeCounters, ReadyStep
from raft3d.node.seams import StateCapture, StateMachine, Storage

log = logging.getLogger("raft3d.node")

R = TypeVar("R")


def _lowest_priority() -> None:
    """Make the calling thread the least favoured by the OS scheduler (Linux: per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Snapshotter(Generic[R]):
    def __init__(
        self,
        node_id: str,
        state_machine: StateMachine[R],
        storage: Storage,
        disk: concurrent.futures.Executor,
        counters: NodeCounters,
        *,
        live: Callable[[], bool],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._node_id = node_id
        self._sm = state_machine
        self._storage = storage
        self._disk = disk
        self._counters = counters
        self._live = live  # False once the node is stopping or halted
        self._on_error = on_error
        # Appends never queue behind encoding; on a busy machine the loop thread runs first.
        self._encoder = concurrent.futures.ThreadPoolExecutor(
            1, f"raft-snap-{node_id}", initializer=_lowest_priority
        )
        self.pending: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Until the save in progress (if any) is done; its failure is the node's, not ours."""
        if self.pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.pending)

    def start(self, core: RaftCore, step: ReadyStep[R]) -> None:
        """Capture the state at the applied index now, unless no snapshot is due there."""
        index = step.snapshot_point(core.snapshot_index)
        if index is None:
            return
        started = time.perf_counter()
        capture = self._sm.capture()
        captured_ms = (time.perf_counter() - started) * 1000
        step.captured()
        settle_ms = settle_long_lived() * 1000  # what was captured is long-lived (node.heap)
        save = asyncio.ensure_future(
            self._save(core, step, index, capture, (started, captured_ms, settle_ms))
        )
        self.pending = save

        def saved(done: asyncio.Future[None]) -> None:
            if self.pending is done:
                self.pending = None
            if not done.cancelled() and done.exception() is not None:
                self._on_error(done.exception())  # type: ignore[arg-type]

        save.add_done_callback(saved)

    async def _save(
        self,
        core: RaftCore,
        step: ReadyStep[R],
        index: int,
        capture: StateCapture,
        timing: tuple[float, float, float],
    ) -> None:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._encoder, capture.encode)
        if not self._live() or index <= core.snapshot_index:
            return  # stopping, or a snapshot from the leader replaced this state meanwhile
        snapshot = core.compact(index, data)
        await loop.run_in_executor(self._disk, self._storage.save_local_snapshot, snapshot)
        first = self._storage.first_index()
        step.compacted(index, first)
        step.snapshot_bytes = len(data)
        self._counters.snapshots += 1
        started, captured_ms, settle_ms = timing
        log.info(
            "snapshot taken and log compacted node=%s term=%d index=%d size=%d "
            "capture_ms=%.2f gc_freeze_ms=%.2f total_ms=%.1f first_index=%d",
            self._node_id,
            core.term,
            index,
            len(data),
            captured_ms,
            settle_ms,
            (time.perf_counter() - started) * 1000,
            first,
        )

    def shutdown(self) -> None:
        self._encoder.shutdown(wait=True)
