"""Local snapshots without stalling the node: capture in O(1) on the event loop, encode on
the loop in short slices, write the file on a thread of its own, commit on the disk thread.

Where the time goes at a million objects (109 MB snapshot), and why each step runs where it
does:

- *capture* (``StateMachine.capture``): O(1), 0.02-0.05 ms; the state is persistent
  structures (``raft3d.domain.record_table``, ``raft3d.domain.persistent``). Nothing is
  frozen for the collector here any more: its full collections freeze what survives them
  (``raft3d.node.heap``); a freeze here used to cost the loop 5-16 ms per snapshot at 1M
  objects.
- *encode* (``StateCapture.parts``): the farm's objects are stored as their snapshot bytes
  (``raft3d.domain.records``), so encoding is joining stored bytes, 44-48 ms of CPU in
  all (``benchmarks/farm_memory_bench.py``). It runs on the loop, ``ENCODE_SLICE_S`` at a
  time; each slice's parts then go to the file on the writer thread (``encode_into``)
  while the loop runs other work, so no
  request or heartbeat waits longer than a slice, and the snapshot is never held whole in
  memory (it was: 110 MB more per node while a snapshot was taken). It used to run on a
  thread at the lowest CPU priority: with per-object packing that was seconds of CPU
  competing for the GIL, and a low-priority thread holding the GIL while the OS ran other
  processes held the loop for up to a second (a priority inversion: leader changes in the
  large-farm benchmark).
  Forking a child to encode was considered and not done: the child touches every object's
  reference count, so copy-on-write duplicates the whole state's pages for each snapshot.
- *write* (``Storage.open_local_snapshot``): the file part by part, past the page cache
  where the file system allows it, its CRC-32 summed as it goes, then its header and the
  fsyncs, on the writer thread (``raft3d.storage.snapshot_stream``); all of it in C with
  the GIL released. On the disk thread, under the log's write lock, it held every log
  append behind a 110 MB write and fsync for seconds.
- *commit* (``Storage.commit_local_snapshot``): one database transaction on the disk thread,
  in order with the appends; then the core drops its log prefix (keeping ``trailing_entries``
  below it for event readers), and serves laggards from the snapshot's file, chunk by chunk,
  rather than from its bytes in memory (``serve_from_file``).

Then the C allocator's free pages (the encode's slices, the file's buffers, the dropped log
prefix) are returned to the system on the writer thread (``raft3d.node.native_heap``).

A crash before the commit recovers from the previous snapshot and the full log (the staged
file is removed as uncommitted). One save runs at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from raft3d.consensus import RaftCore
from raft3d.node.heap import after_capture
from raft3d.node.native_heap import trim
from raft3d.node.ready import NodeCounters, ReadyStep
from raft3d.node.seams import SnapshotSink, StateCapture, StateMachine, Storage

log = logging.getLogger("raft3d.node")

R = TypeVar("R")

# The longest the loop encodes a snapshot before it lets other work run.
ENCODE_SLICE_S = 0.002


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
        # Snapshot files are written here, beside the disk thread: appends never wait on them.
        self._writer = concurrent.futures.ThreadPoolExecutor(1, f"raft-snap-{node_id}")
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
        settle_ms = after_capture() * 1000  # nothing, once the collector is tuned (node.heap)
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
        meta = core.snapshot_meta(index)
        storage = self._storage
        sink = await loop.run_in_executor(self._writer, storage.open_local_snapshot, meta)
        try:
            size = await encode_into(capture, sink, self._writer)
            await loop.run_in_executor(self._writer, sink.finish)
        except BaseException:
            sink.abort()
            raise
        if not self._live() or index <= core.snapshot_index:
            return  # stopping, or a snapshot from the leader replaced this state meanwhile
        # Committed on the disk thread, in order with the appends; then the core drops its
        # log prefix and serves laggards from the file.
        await loop.run_in_executor(self._disk, storage.commit_local_snapshot, meta)
        data = storage.snapshot_data(index)
        if data is not None and index > core.snapshot_index:
            core.compact_served(index, data)
        first = self._storage.first_index()
        # The snapshot's index, size and count change together, with no await between: a
        # threshold check in between would weigh the new log against the old size.
        step.compacted(index, first)
        step.snapshot_bytes = size
        self._counters.snapshots += 1
        # The encode's slices, the file's buffers and the log prefix just dropped: their
        # pages go back to the system (node.native_heap), off the loop.
        await loop.run_in_executor(self._writer, trim)
        started, captured_ms, settle_ms = timing
        log.info(
            "snapshot taken and log compacted node=%s term=%d index=%d size=%d "
            "capture_ms=%.2f gc_freeze_ms=%.2f total_ms=%.1f first_index=%d",
            self._node_id,
            core.term,
            index,
            size,
            captured_ms,
            settle_ms,
            (time.perf_counter() - started) * 1000,
            first,
        )

    def shutdown(self) -> None:
        self._writer.shutdown(wait=True)


def serve_from_file(core: RaftCore, storage: Storage, index: int) -> None:
    """The snapshot at ``index`` is durable: the core sends laggards chunks of its file
    from now on and drops the bytes it held (a whole snapshot, 110 MB at 1M objects)."""
    data = storage.snapshot_data(index)
    if data is not None and not core.serve_from(index, data):
        log.debug("snapshot at %d replaced before it could be served from its file", index)


async def encode_into(
    capture: StateCapture, sink: SnapshotSink, writer: concurrent.futures.Executor
) -> int:
    """Encode ``capture`` on the loop, ``ENCODE_SLICE_S`` at a time, each slice's parts
    written to ``sink`` on the ``writer`` thread (the loop free meanwhile); returns the size.
    The snapshot is never held whole: a slice's parts at most (about 0.5 MB)."""
    loop = asyncio.get_running_loop()
    batch: list[bytes] = []
    size = 0
    started = time.perf_counter()
    for part in capture.parts():
        batch.append(part)
        size += len(part)
        if time.perf_counter() - started >= ENCODE_SLICE_S:
            await loop.run_in_executor(writer, sink.write, b"".join(batch))
            batch = []
            started = time.perf_counter()
    if batch:
        await loop.run_in_executor(writer, sink.write, b"".join(batch))
    return size
