"""The asyncio driver: runs one Raft core against storage, a peer transport and a state
machine, all three given to it (``raft3d.node.wiring.build_node`` builds the real ones).

The core is pure; this module owns time (``raft3d.node.ticking``: a timer set for the next
tick that does more than count) and I/O. Every decision about a Ready
(what to write, what may be sent before the write, applying, proposals, read barriers,
when to snapshot) is made by ``raft3d.node.ready.ReadyStep``, the same code the
deterministic simulation runs; this loop only carries it out, one Ready at a time, in the
order the Ready contract prescribes: persist (on the disk thread, ``raft3d.node.disk``),
send, apply, release reads, advance. What callers read of the applied history (events,
outcomes, snapshots) is ``raft3d.node.history``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from raft3d.consensus import RaftCore
from raft3d.consensus.types import Message, NotLeaderError, Ready, Role
from raft3d.node.carrying import ReadyCarrier
from raft3d.node.disk import DiskThread, tune_switch_interval
from raft3d.node.errors import NodeStoppedError
from raft3d.node.events import EventFeed
from raft3d.node.forwarding import ProposalForwarding
from raft3d.node.history import NodeHistory
from raft3d.node.membership import NodeMembership
from raft3d.node.options import NodeOptions
from raft3d.node.ready import NodeCounters, ReadyPlan, ReadyStep
from raft3d.node.restoring import Restorer
from raft3d.node.roles import RoleWatch
from raft3d.node.seams import StateMachine, Storage, Transport
from raft3d.node.snapshotting import Snapshotter
from raft3d.node.ticking import TickClock
from raft3d.transport.proposals import ForwardedProposal, PeerMessage, ProposalAnswer

log = logging.getLogger("raft3d.node")


R = TypeVar("R")


class RaftNode(NodeMembership, NodeHistory[R], Generic[R]):
    def __init__(
        self,
        options: NodeOptions,
        storage: Storage,
        transport: Transport,
        state_machine: StateMachine[R],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options
        self.storage = storage
        self.transport = transport
        self._sm = state_machine
        self._rng = rng or random.Random()
        self.counters = NodeCounters()
        self._core: RaftCore | None = None
        self._step: ReadyStep[R] | None = None
        self._restorer: Restorer[R] | None = None  # built with the step, in start
        self._wakeup = asyncio.Event()
        self._parked = False  # the loop task waits for _wakeup, with no Ready in hand
        self._handed: tuple[Ready, ReadyPlan] | None = None  # a Ready for the task to finish
        # Every disk write runs on this one thread, in submission order: the event loop never
        # waits on fsync, and a snapshot save is ordered before the appends that follow it.
        self._disk = DiskThread(f"raft-disk-{options.node_id}")  # raft3d.node.disk
        self._snapshots = Snapshotter(
            options.node_id,
            state_machine,
            storage,
            self._disk,
            self.counters,
            live=lambda: not self._stopping and self.halted is None,
            on_error=self._halt,
        )
        self._events: EventFeed[R] = EventFeed(state_machine.outcome)
        self.halt_listeners: list[Callable[[BaseException], None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self.clock = TickClock(options.tick_s, self._on_due)  # its counters: wakeups, ticks
        self._stopping = False
        self.halted: BaseException | None = None
        self.cluster_id = ""
        self.forwarding: ProposalForwarding[R] = ProposalForwarding(self)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        tune_switch_interval()  # the disk thread gets the GIL back sooner (node.disk)
        # On the disk thread: reading and checking a big snapshot file (110 MB at 1M objects)
        # is done there with the GIL released, not on the loop.
        state = await asyncio.get_running_loop().run_in_executor(self._disk, self.storage.load)
        if state.snapshot is None:
            self._sm.forget_outcomes(self.storage.first_index() - 1)
        core = self._core = RaftCore(self.options.core, state, self._rng)
        step = self._step = ReadyStep(
            self._sm,
            durable=state.hard_state,
            applied=0,  # until the snapshot (if any) is restored, below
            snapshot_threshold=self.options.snapshot_threshold,
            snapshot_log_ratio=self.options.snapshot_log_ratio,
            snapshot_phase=self.options.snapshot_phase,
            read_retry=self.options.read_retry_s,
            read_context_prefix=os.urandom(8),
            counters=self.counters,
            on_apply=self._events.offer,
        )
        restorer = self._restorer = Restorer(
            self.node_id,
            self._sm,
            step,
            wake=self._wakeup.set,
            on_error=self._halt,
            disk_waiting=lambda: self._disk.waiting,
        )
        if state.snapshot is not None:
            restorer.start_from_storage(state.snapshot, core, self.storage)
        self._roles = RoleWatch(self.node_id, core.term, self.counters, step.proposals.fail)
        transport = self.transport
        self.carrier = ReadyCarrier(
            core,
            step,
            self.storage,
            transport.send,
            self._disk,
            self._sm,
            self._snapshots,
            restorer,
            flush=transport.flush,
        )
        self.carrier.after = self._membership_ready
        self._membership_start(state)
        log.info(
            "node starting node=%s term=%d snapshot_index=%d last_index=%d commit=%d",
            self.node_id,
            core.term,
            0 if state.snapshot is None else state.snapshot.meta.index,
            core.last_index,
            state.hard_state.commit,
        )
        await self.transport.start()
        self.clock.start(asyncio.get_running_loop(), self._tick)
        self._arm()
        self._wakeup.set()  # apply what the log holds committed now, not at the first timer
        self._loop_task = asyncio.create_task(self._run(), name=f"raft-{self.node_id}")

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.clock.stop()
        if self._loop_task is not None:
            # Let the loop finish the Ready in hand (a write may be on a worker thread) rather
            # than cancelling it halfway; storage closes only after that.
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), 10.0)
            except TimeoutError:
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
        await self.transport.stop()
        if self._restorer is not None:
            await self._restorer.stop()
        self._fail_all(NodeStoppedError("node is stopping"))
        await self._snapshots.wait()
        step = self._step
        unwritten = None if step is None else step.unwritten_hard_state()
        if self.halted is None and unwritten is not None:
            # Keep the commit index we know (queued after any write still on the disk thread).
            await asyncio.get_running_loop().run_in_executor(
                self._disk, self.storage.persist, unwritten, ()
            )
        self._snapshots.shutdown()
        self._disk.shutdown(wait=True)
        self.storage.close()
        log.info("node stopped node=%s", self.node_id)

    # -- public interface ----------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.options.node_id

    @property
    def core(self) -> RaftCore:
        if self._core is None:
            raise NodeStoppedError("node is not started")
        return self._core

    @property
    def step(self) -> ReadyStep[R]:
        if self._step is None:
            raise NodeStoppedError("node is not started")
        return self._step

    @property
    def is_leader(self) -> bool:
        return self._core is not None and self._core.role is Role.LEADER

    @property
    def leader_id(self) -> str | None:
        return None if self._core is None else self._core.leader_id

    async def propose(self, data: bytes, timeout: float | None = None) -> R:
        """Replicate ``data``; return the state machine's result once it is applied here.

        On a follower, ``data`` goes to the leader over the peer link
        (``raft3d.node.forwarding``). Raises NotLeaderError when it could not be proposed or
        forwarded (naming the leader when known), EntryTooLargeError up front,
        OutcomeUnknownError when the term ends (or the forwarding leader is lost) before the
        entry is seen to commit, and TimeoutError when the deadline passes first (the entry
        may still commit later; its leadership did not change, so it is not reported as such).
        """
        try:
            index, term = self.propose_here(data)
        except NotLeaderError as exc:
            try:
                return await self.forwarding.propose(data, exc.leader_id, self._timeout(timeout))
            except NotLeaderError:
                self.counters.proposals["not_leader"] += 1
                raise
        return await self.step.proposals.wait(index, term, self._timeout(timeout))

    def propose_here(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` on this node's core (as leader) and wake the loop to replicate it."""
        self._check_running()
        if self.clock.catch_up():
            self._wakeup.set()  # whatever the ticks did is looked at by the loop
        index, term = self.core.propose(data)
        self._wakeup.set()
        return index, term

    async def read_barrier(self, timeout: float | None = None) -> None:
        """Return once this node has applied everything committed before the call (ReadIndex)."""
        self._check_running()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.step.reads.add(future)
        self._wakeup.set()
        deadline = self._timeout(timeout)
        try:
            await asyncio.wait_for(asyncio.shield(future), deadline)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"no leader confirmed a read index within {deadline:g} s") from None

    def _timeout(self, timeout: float | None) -> float:
        return self.options.default_timeout_s if timeout is None else timeout

    @property
    def halted_reason(self) -> str | None:
        """Why the node stopped serving (a disk error, a corrupt entry), or None."""
        return None if self.halted is None else repr(self.halted)

    # -- inputs (the transport calls these) ------------------------------------------------

    def receive(self, msg: PeerMessage) -> None:
        if type(msg) is ForwardedProposal:
            self.forwarding.received(msg)  # refused (stopped) if this node halted
            return
        if self._core is None or self.halted is not None:
            return
        if type(msg) is ProposalAnswer:
            self.forwarding.answered(msg)
            return
        assert type(msg) is Message
        if not self._gate.admit(msg):
            return  # it may have lost its log: no say in elections (raft3d.node.recovery)
        self.clock.catch_up()  # the core reads its counters (leases, timeouts) from here
        self._core.step(msg)
        if self._parked:
            self._run_inline()
        else:
            self._wakeup.set()

    def peer_changed(self, peer: str, up: bool) -> None:
        core = self._core
        log.info(
            "peer %s node=%s peer=%s term=%d index=%d",
            "connected" if up else "disconnected",
            self.node_id,
            peer,
            core.term if core else 0,
            core.last_index if core else 0,
        )
        if not up:
            self.forwarding.link_lost(peer)
        if not up and core is not None and self.halted is None:
            self.clock.catch_up()
            core.report_unreachable(peer)
            self._wakeup.set()  # the election may now be due sooner: re-arm the timer

    def _on_due(self) -> None:
        core, step = self._core, self._step
        if self._stopping or core is None or step is None or self.halted is not None:
            return
        if self._parked and step.reads.retry_due() > time.monotonic():
            self._run_inline()  # a heartbeat to send, or only a later deadline to arm for
        else:
            self._wakeup.set()  # the loop task retries the reads, runs the Ready, re-arms

    def _tick(self) -> None:
        if self._core is not None and self.halted is None and self._gate.ticking:
            self._core.tick()

    def _arm(self) -> None:
        if self._core is not None and self._step is not None:
            self.clock.arm_for(self._core, self._step.reads)

    # -- the loop ------------------------------------------------------------------------

    def _run_inline(self) -> None:
        """Carry out the Readies that only send here, without waking the parked loop task
        (that costs more than such a Ready); one to write or apply goes to the task."""
        if self._handed is not None:
            return  # the task has a Ready to finish first; it runs the rest after
        try:
            self._handed = self.carrier.carry_inline()
            if self._handed is not None:
                self._wakeup.set()
                return
            self._roles.observe(self.core)
            self._membership_turn()
            self._arm()
        except Exception as exc:  # as in _run
            self._halt(exc)

    async def _run(self) -> None:
        core, step = self.core, self.step
        while not self._stopping and self.halted is None:
            self._parked = True
            try:
                await self._wakeup.wait()
            finally:
                self._parked = False
            self._wakeup.clear()
            if self.halted_reason is not None:  # an inline Ready failed meanwhile
                return
            try:
                if self._handed is not None:  # finished even when stopping: it is in hand
                    handed, self._handed = self._handed, None
                    await self.carrier.carry(*handed)
                self.clock.catch_up()
                # The timer wakes the loop when a read is due for a retry (see _arm).
                step.reads.issue(time.monotonic(), core.read_index)
                while core.has_ready() and not self._stopping and self.halted is None:
                    rd = core.ready()
                    await self.carrier.carry(rd, step.plan(rd))
                self._roles.observe(core)
                self._membership_turn()
                self._arm()
            except Exception as exc:  # a failed disk or an undecodable entry: stop, never diverge
                self._halt(exc)
                return

    # -- failure -------------------------------------------------------------------------

    def _fail_all(self, exc: Exception) -> None:
        """Stopping or halted: proposals are in doubt, reads fail with ``exc``."""
        if self._step is not None:
            self._step.proposals.fail()
            self._step.reads.fail(exc)
            self._wake_watchers()

    def _halt(self, exc: BaseException) -> None:
        if self.halted is not None:
            return
        self.halted = exc
        log.critical("node halted node=%s: %r", self.node_id, exc, exc_info=exc)
        self._fail_all(NodeStoppedError(f"node halted: {exc!r}"))
        for listener in list(self.halt_listeners):
            listener(exc)

    def _check_running(self) -> None:
        if self._stopping:
            raise NodeStoppedError("node is stopping")
        if self.halted is not None:
            raise NodeStoppedError(f"node halted: {self.halted!r}")
