"""Restoring the state machine from a snapshot without holding the event loop.

Two restores are big: a follower installing a snapshot from its leader, and a node starting
from its own snapshot file. At a million objects either is seconds of CPU (a few µs per
object). Done in one go on the loop, the node answered nothing meanwhile; done on a worker
thread, it competed with the loop for the GIL and held it for hundreds of ms at a time. A
follower whose loop is held misses heartbeats; once it runs again, its lazily counted ticks
(``raft3d.node.ticking``) pass its election timeout before the waiting heartbeats are stepped,
and it starts an election.

So a restore runs on the loop in slices (``RESTORE_SLICE_S`` of the machine's
``restorer`` steps, then a yield), beside the Raft loop, which keeps carrying Readies:
heartbeats and appends are answered, entries are persisted and committed. Meanwhile
(``ReadyStep.begin_restore``):

- the old state stays in place, untouched; the new one is built aside and replaces it only
  when complete (``StateMachine.restorer``);
- committed entries after the snapshot are held and applied only once it is restored, in
  order, in batches with yields between them;
- the applied index stays where it was: linearizable reads wait for it, ``/readyz`` answers
  503 (applied behind commit), local reads are refused (``RaftNode.restoring``).

What the restore builds is frozen out of the cyclic collector's reach every
``FREEZE_EVERY`` slices (``raft3d.node.heap``): otherwise the collector's full passes walk
the growing new state, one step of the loop each (1.8 s measured at 1M objects). A restore
dropped part way is still freed (by reference counting: the state makes no cycles).

A newer snapshot arriving meanwhile replaces the one being restored (its restore is
dropped unfinished). A crash mid-restore is safe: the snapshot is durable (``Storage.persist``
for a received one, the node's own file at start) before its restore begins, and the node
restores it again when it starts. Both are restored from that file, read by range: a
received snapshot's bytes are dropped once durable (``ReadyCarrier``), so a restoring node
holds its state and the one being built, not the snapshot as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from raft3d.consensus import RaftCore
from raft3d.consensus.types import Snapshot, SnapshotData
from raft3d.node.heap import settle_long_lived
from raft3d.node.ready import ReadyStep
from raft3d.node.seams import StateMachine, Storage
from raft3d.node.snapshotting import serve_from_file

log = logging.getLogger("raft3d.node")

R = TypeVar("R")

# The longest a restore runs before it lets other work run.
RESTORE_SLICE_S = 0.002
# Between two slices, while the disk thread has work, the loop idles this long, without the
# GIL (see ``_run``).
RESTORE_GAP_S = 0.001
# Entries held during a restore applied between two yields.
HELD_BATCH = 64
# Slices between two freezes of what the restore has built so far (see ``_run``).
FREEZE_EVERY = 25


class Restorer(Generic[R]):
    def __init__(
        self,
        node_id: str,
        state_machine: StateMachine[R],
        step: ReadyStep[R],
        *,
        wake: Callable[[], None],
        on_error: Callable[[BaseException], None],
        disk_waiting: Callable[[], bool] = lambda: True,
    ) -> None:
        """``disk_waiting``: the disk thread has a job queued or running
        (``raft3d.node.disk.DiskThread.waiting``)."""
        self._node_id = node_id
        self._sm = state_machine
        self._step = step
        self._wake = wake  # the Raft loop: held entries applied, reads may be released
        self._on_error = on_error
        self._disk_waiting = disk_waiting
        self._task: asyncio.Task[None] | None = None
        self.slices = 0  # yields to the loop, over every restore (for tests and logs)

    @property
    def active(self) -> bool:
        """A restore (or the applying of the entries held during one) is in progress."""
        return self._task is not None and not self._task.done()

    def start(
        self, snapshot: Snapshot, *, log_from: int | None = None, data: SnapshotData | None = None
    ) -> None:
        """Restore from ``snapshot`` (durable already) in slices: one received from the
        leader (call before ``ReadyStep.finish`` of the Ready carrying it), or the node's own
        at start (``log_from`` given, as in ``ReadyStep.install``). ``data``, if given, is
        the snapshot's data (read from its file, say) in place of ``snapshot.data``."""
        self._step.begin_restore(snapshot)
        if self._task is not None:
            self._task.cancel()  # superseded: its steps are closed, its state never seen
        source = snapshot.data if data is None else data
        task = asyncio.create_task(
            self._run(snapshot, log_from, source), name=f"restore-{self._node_id}"
        )
        self._task = task

        def finished(done: asyncio.Task[None]) -> None:
            if self._task is done:
                self._task = None
            if not done.cancelled() and done.exception() is not None:
                self._on_error(done.exception())  # type: ignore[arg-type]

        task.add_done_callback(finished)

    def start_from_storage(self, snapshot: Snapshot, core: RaftCore, storage: Storage) -> None:
        """At start, the snapshot ``storage`` loaded. Read from its file (as laggards are
        served from it) when it can be: the bytes loaded are then dropped before the state is
        built, rather than held beside it (110 MB at 1M objects)."""
        meta = snapshot.meta
        serve_from_file(core, storage, meta.index)
        served = core.served_snapshot
        log_from = storage.first_index()
        if (
            served is not None
            and served.meta.index == meta.index
            and served.data is not snapshot.data
        ):
            self.start(Snapshot(meta, b""), log_from=log_from, data=served.data)
        else:
            self.start(snapshot, log_from=log_from)

    async def _run(self, snapshot: Snapshot, log_from: int | None, data: SnapshotData) -> None:
        started = time.perf_counter()
        slice_started = started
        slices = 0
        steps = self._sm.restorer(data)
        try:
            for _ in steps:
                if time.perf_counter() - slice_started >= RESTORE_SLICE_S:
                    if slices % FREEZE_EVERY == FREEZE_EVERY - 1:
                        # The state being built is millions of tracked containers: left to
                        # the collector, its full collections walk all of them, longer as
                        # the state grows (seconds in one step, measured at 1M objects).
                        # Frozen as it is built, like a restored state (node.heap).
                        settle_long_lived()
                    # The disk thread (a log append or a snapshot to persist) runs while the
                    # loop idles: ``asyncio.sleep(0)`` never lets go of the GIL, and each
                    # call of the thread that re-takes it waits for a forced switch, so a
                    # long restore starved the disk (appends and a newer snapshot waited
                    # for its end). With nothing on the disk, the restore goes on at once.
                    await asyncio.sleep(RESTORE_GAP_S if self._disk_waiting() else 0)
                    slices += 1
                    slice_started = time.perf_counter()
        finally:
            steps.close()  # cancelled part way: nothing of it is kept
        settle_ms = settle_long_lived() * 1000  # the restored state is long-lived (node.heap)
        step = self._step
        step.restored(snapshot, log_from, size=len(data))
        restored_ms = (time.perf_counter() - started) * 1000
        held = 0
        while step.apply_held(HELD_BATCH):
            held += HELD_BATCH
            await asyncio.sleep(0)
            slices += 1
        self.slices += slices
        self._wake()
        log.info(
            "%s node=%s index=%d size=%d restore_ms=%.0f slices=%d "
            "gc_freeze_ms=%.1f held_entries_applied>=%d total_ms=%.0f",
            "snapshot installed" if log_from is None else "snapshot restored at start",
            self._node_id,
            snapshot.meta.index,
            len(data),
            restored_ms,
            slices,
            settle_ms,
            held,
            (time.perf_counter() - started) * 1000,
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
