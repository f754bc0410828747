"""Carrying out one Ready, in the order the Ready contract prescribes: send what may go
before the write, persist (on the disk thread), send the rest, install (restoring in
slices: ``raft3d.node.restoring``) or apply, advance.

Readies that only send (a heartbeat and its answer, most of what an idle node does) can be
carried out at once, from whatever callback stepped the core: ``carry_inline`` does that
and stops at the first Ready that must be written or applied, which the caller hands to
its loop task (``carry``). Every decision about a Ready is ``ReadyStep``'s; this only executes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from raft3d.consensus import RaftCore
from raft3d.consensus.types import Message, Ready, Snapshot, SnapshotData
from raft3d.node.disk import DiskThread
from raft3d.node.ready import ReadyPlan, ReadyStep, Write
from raft3d.node.restoring import Restorer
from raft3d.node.seams import StateMachine, Storage
from raft3d.node.snapshotting import Snapshotter, serve_from_file

log = logging.getLogger("raft3d.node")

R = TypeVar("R")


class ReadyCarrier(Generic[R]):
    def __init__(
        self,
        core: RaftCore,
        step: ReadyStep[R],
        storage: Storage,
        send: Callable[[Message], bool],
        disk: DiskThread,
        state_machine: StateMachine[R],
        snapshots: Snapshotter[R],
        restorer: Restorer[R],
        flush: Callable[[], None] = lambda: None,
    ) -> None:
        """``send`` may queue a message until the end of the loop's turn; ``flush`` writes
        what is queued at once."""
        self._core = core
        self._step = step
        self._storage = storage
        self._send = send
        self._flush = flush
        self._disk = disk
        self._sm = state_machine
        self._snapshots = snapshots
        self.restorer = restorer
        self.after: Callable[[Ready], None] = lambda rd: None  # once a Ready is advanced

    def carry_inline(self) -> tuple[Ready, ReadyPlan] | None:
        """Carry out every Ready the core has that only sends; return the first one that
        must be written or applied (with its plan), for ``carry`` on the loop task."""
        core, step, send = self._core, self._step, self._send
        while core.has_ready():
            rd = core.ready()
            plan = step.plan(rd)
            if plan.write is not None or rd.snapshot is not None or rd.committed_entries:
                # Writes wait for the disk; applies are left to the task too, where the
                # commits that arrive meanwhile are applied (and answered) in one batch.
                return rd, plan
            for msg in plan.early:
                send(msg)
            for msg in plan.late:
                send(msg)
            self._finish(rd)
        return None

    async def carry(self, rd: Ready, plan: ReadyPlan) -> None:
        step, send = self._step, self._send
        write = plan.write
        if write is None and rd.committed_entries and not plan.late and rd.snapshot is None:
            # Nothing to write and no answer a peer waits for (a leader's commit index going
            # out): apply first, so the proposers are answered before those messages are
            # sealed and written.
            step.finish(rd)
            for msg in plan.early:
                send(msg)
            self._advance(rd)
            return
        for msg in plan.early:
            send(msg)
        if write is not None:
            if plan.early:
                # Out now, not after the write is handed over: the followers' fsyncs then
                # overlap ours instead of starting after it began.
                self._flush()
            # On the disk thread: meanwhile requests are accepted and messages stepped, which
            # makes the next batch bigger (group commit) instead of stalling the node.
            await self._disk.run(
                self._storage.persist, write.hard_state, write.entries, write.snapshot
            )
            step.written(plan)
        for msg in plan.late:  # votes and acks: only now that what they promise is durable
            send(msg)
        if rd.snapshot is None:
            self._finish(rd)
            return
        # Restoring a big state takes seconds: in slices beside this loop, which goes on
        # carrying Readies (raft3d.node.restoring); entries committed meanwhile wait for it.
        snapshot, data = self._from_file(rd, write)
        self.restorer.start(snapshot, data=data)
        log.info(
            "snapshot received node=%s term=%d index=%d size=%d: restoring",
            *(self._core.node_id, self._core.term, snapshot.meta.index, len(data)),
        )
        self._finish(rd)

    def _from_file(self, rd: Ready, write: Write | None) -> tuple[Snapshot, SnapshotData]:
        """The snapshot ``rd`` carries is durable: it is restored from its file, and the core
        serves laggards from it, so the bytes received are let go of here (the Ready and its
        write held the last references). A follower installing a snapshot then holds its
        state and the one being built, not the snapshot too (110 MB at 1M objects). Storage
        without files (the in-memory twin) hands back the bytes themselves."""
        received = rd.snapshot
        assert received is not None and write is not None and write.snapshot is received
        meta = received.meta
        serve_from_file(self._core, self._storage, meta.index)
        data = self._storage.snapshot_data(meta.index)
        if data is None or data is received.data:
            return received, received.data
        rd.snapshot = write.snapshot = Snapshot(meta, b"")
        return rd.snapshot, data

    def _finish(self, rd: Ready) -> None:
        self._step.finish(rd)
        self._advance(rd)

    def _advance(self, rd: Ready) -> None:
        self._core.advance(rd)
        self.after(rd)
        if self._step.snapshot_due() and self._snapshots.pending is None:
            self._snapshots.start(self._core, self._step)
