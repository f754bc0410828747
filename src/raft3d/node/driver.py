"""The asyncio driver: runs one Raft core against durable storage, the peer transport and a
state machine.

The core is pure; this module owns time (a tick timer), I/O (storage, transport) and the
mapping from log indexes back to the callers waiting on them. One Ready is handled at a time
and without yielding to the event loop, in the order the Ready contract prescribes
(``raft3d.consensus.types.Ready``): persist, send, apply, release reads, advance.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from raft3d.config import Settings
from raft3d.consensus import CoreConfig, RaftCore
from raft3d.consensus.sending import sendable_before_persist
from raft3d.consensus.types import (
    Entry,
    EntryType,
    HardState,
    Message,
    NotLeaderError,
    Ready,
    Role,
    Snapshot,
)
from raft3d.node.errors import NodeStoppedError, NoLeaderError, OutcomeUnknownError
from raft3d.node.heap import settle_long_lived
from raft3d.node.status import NodeStatus, PeerInfo
from raft3d.storage import DurableStorage, SnapshotInfo
from raft3d.transport import Transport

log = logging.getLogger("raft3d.node")

# Outstanding ReadIndex requests are re-issued after this long without an answer (the request
# or its answer may have been lost, or the leader changed).
READ_RETRY_S = 0.1
# Per-entry bookkeeping counted with an entry's data when weighing the log against a snapshot.
_ENTRY_OVERHEAD_BYTES = 32


class StateCapture(Protocol):
    """A frozen picture of the state machine; ``encode`` runs on a worker thread."""

    def encode(self) -> bytes: ...


class StateMachine(Protocol):
    """What the driver needs of an application. ``apply`` must be deterministic.

    ``capture`` runs on the event loop and must be cheap at any state size (O(1) for the
    farm: ``raft3d.domain.persistent``); its ``encode`` runs on the snapshot thread. The
    machine keeps each applied entry's outcome until ``forget_outcomes`` (called as the log
    is compacted) and carries the ones it holds in its snapshots, so that every entry still in
    the log has its outcome, on every node, across restarts and snapshot installs.
    """

    def apply(self, index: int, data: bytes) -> object: ...

    def capture(self) -> StateCapture: ...

    def restore(self, data: bytes) -> None:
        """Replace the state; may run on a worker thread (never while ``apply`` runs)."""
        ...

    def outcome(self, index: int) -> object: ...

    def forget_outcomes(self, through: int) -> None: ...


@dataclass(slots=True)
class NodeCounters:
    """Plain counters the metrics layer reads at scrape time."""

    elections: int = 0
    snapshots: int = 0
    proposals: dict[str, int] = field(
        default_factory=lambda: {"committed": 0, "outcome_unknown": 0, "not_leader": 0}
    )
    apply_seconds_total: float = 0.0
    applied_entries: int = 0


@dataclass(frozen=True, slots=True)
class CommittedEvent:
    """One committed log entry with what applying it returned (None for a leader's no-op)."""

    index: int
    term: int
    is_noop: bool
    data: bytes
    outcome: object


@dataclass(frozen=True, slots=True)
class EventPage:
    first_index: int  # oldest index still held in the log (older ones were compacted)
    last_index: int  # newest index applied on this node
    snapshot_index: int  # index of the newest durable snapshot
    events: list[CommittedEvent]


@dataclass(slots=True)
class _Pending:
    term: int
    future: asyncio.Future[object]


@dataclass(slots=True)
class _ReadBatch:
    waiters: list[asyncio.Future[None]]
    issued_at: float


class RaftNode:
    def __init__(
        self,
        settings: Settings,
        state_machine: StateMachine,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._sm = state_machine
        self._rng = rng or random.Random()
        rs = settings.raft_settings
        self._core_config = CoreConfig(
            node_id=settings.node_id,
            voters=tuple(m.node_id for m in settings.members),
            election_ticks=rs.election_ticks,
            heartbeat_ticks=rs.heartbeat_ticks,
            pre_vote=rs.pre_vote,
            check_quorum=rs.check_quorum,
            max_msg_bytes=rs.max_msg_bytes,
            max_inflight_msgs=rs.max_inflight_msgs,
            max_entry_bytes=rs.max_entry_bytes,
            snapshot_chunk_bytes=rs.snapshot_chunk_bytes,
            trailing_entries=rs.snapshot_trailing_entries,
        )
        self.storage = DurableStorage(
            settings.data_dir,
            snapshots_keep=rs.snapshots_keep,
            trailing_entries=rs.snapshot_trailing_entries,
        )
        self._core: RaftCore | None = None
        # Set from storage by start(); the defaults let stop() run after a failed start.
        self._latest_hard_state = self._synced_hard_state = HardState()
        self.transport = Transport(
            settings.node_id,
            (settings.raft.host, settings.raft.port),
            {m.node_id: (m.raft.host, m.raft.port) for m in settings.peers},
            settings.cluster_secret,
            self._on_message,
            on_peer_change=self._on_peer_change,
        )
        self.counters = NodeCounters()
        self._pending: dict[int, _Pending] = {}
        self._reads_unissued: list[asyncio.Future[None]] = []
        self._reads_issued: dict[bytes, _ReadBatch] = {}
        self._reads_waiting_apply: deque[tuple[int, list[asyncio.Future[None]]]] = deque()
        self._read_ids = itertools.count(1)
        self._applied = 0
        self._snapshot_index = 0
        # For the snapshot threshold: log bytes applied since the last capture, and the size
        # of the last snapshot.
        self._log_bytes_since_snapshot = 0
        self._snapshot_bytes = 0
        # Committed entries are offered to these as they are applied (the SSE stream); they
        # must not block (a listener that cannot keep up drops itself).
        self.event_listeners: list[Callable[[CommittedEvent], None]] = []
        self.halt_listeners: list[Callable[[BaseException], None]] = []
        self._wakeup = asyncio.Event()
        # Every disk write runs on this one thread, in submission order: the event loop never
        # waits on fsync, and a snapshot save is ordered before the appends that follow it.
        self._disk = concurrent.futures.ThreadPoolExecutor(1, f"raft-disk-{settings.node_id}")
        # Snapshots are encoded on their own thread, so appends never queue behind encoding.
        self._encoder = concurrent.futures.ThreadPoolExecutor(1, f"raft-snap-{settings.node_id}")
        self._snapshot_save: asyncio.Future[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._stopping = False
        self.halted: BaseException | None = None
        self._last_role = Role.FOLLOWER
        self._last_leader: str | None = None
        self._last_term = 0
        self.role_listeners: list[Callable[[Role, int, str | None], None]] = []

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        state = self.storage.load()
        if state.snapshot is not None:
            self._sm.restore(state.snapshot.data)
            self._applied = state.snapshot.meta.index
            self._snapshot_index = state.snapshot.meta.index
            self._snapshot_bytes = len(state.snapshot.data)
            settle_long_lived()
        self._sm.forget_outcomes(self.storage.first_index() - 1)
        self._core = RaftCore(self._core_config, state, self._rng)
        self._latest_hard_state = self._synced_hard_state = state.hard_state
        self._last_term = self._core.term
        log.info(
            "node starting node=%s term=%d snapshot_index=%d last_index=%d commit=%d",
            self.node_id,
            self._core.term,
            self._snapshot_index,
            self._core.last_index,
            state.hard_state.commit,
        )
        await self.transport.start()
        loop = asyncio.get_running_loop()
        self._tick_interval = self.settings.raft_settings.tick_ms / 1000
        self._next_tick = loop.time() + self._tick_interval
        self._tick_handle = loop.call_at(self._next_tick, self._on_tick)
        self._loop_task = asyncio.create_task(self._run(), name=f"raft-{self.node_id}")

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
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
        self._fail_all(NodeStoppedError("node is stopping"))
        if self._snapshot_save is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._snapshot_save)
        if self.halted is None and self._latest_hard_state != self._synced_hard_state:
            # Keep the commit index we know (queued after any write still on the disk thread).
            await asyncio.get_running_loop().run_in_executor(
                self._disk, self.storage.persist, self._latest_hard_state, ()
            )
        self._encoder.shutdown(wait=True)
        self._disk.shutdown(wait=True)
        self.storage.close()
        log.info("node stopped node=%s", self.node_id)

    # -- public interface ----------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    @property
    def applied_index(self) -> int:
        return self._applied

    @property
    def core(self) -> RaftCore:
        if self._core is None:
            raise NodeStoppedError("node is not started")
        return self._core

    @property
    def is_leader(self) -> bool:
        return self._core is not None and self._core.role is Role.LEADER

    @property
    def leader_id(self) -> str | None:
        return None if self._core is None else self._core.leader_id

    async def propose(self, data: bytes, timeout: float | None = None) -> object:
        """Replicate ``data``; return the state machine's result once it is applied here.

        Raises NotLeaderError (naming the leader when known), EntryTooLargeError up front,
        OutcomeUnknownError when the term ends (or the deadline passes) before the entry is
        seen to commit.
        """
        self._check_running()
        try:
            index, term = self.core.propose(data)
        except NotLeaderError:
            self.counters.proposals["not_leader"] += 1
            raise
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending[index] = _Pending(term, future)
        self._wakeup.set()
        if timeout is None:
            timeout = self.settings.http_settings.request_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            self._forget_pending(index, future)
            self.counters.proposals["outcome_unknown"] += 1
            raise OutcomeUnknownError(index, term) from None
        except asyncio.CancelledError:
            self._forget_pending(index, future)  # the caller left; nobody will read the result
            raise

    def _forget_pending(self, index: int, future: asyncio.Future[object]) -> None:
        waiter = self._pending.get(index)
        if waiter is not None and waiter.future is future:
            del self._pending[index]

    async def read_barrier(self, timeout: float | None = None) -> None:
        """Return once this node has applied everything committed before the call (ReadIndex)."""
        self._check_running()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reads_unissued.append(future)
        self._wakeup.set()
        if timeout is None:
            timeout = self.settings.http_settings.request_timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            future.cancel()
            raise NoLeaderError("no leader confirmed a read index in time") from None

    async def take_snapshot(self) -> int:
        """Snapshot the state machine now (at the applied index) and wait until it is durable.

        Returns the index of the newest snapshot (unchanged if nothing was applied since, or
        if a snapshot received from the leader is about to replace the applied state).
        """
        self._check_running()
        if self._snapshot_save is not None:
            await asyncio.shield(self._snapshot_save)
        if self._applied > self._snapshot_index:
            self._start_snapshot()
        if self._snapshot_save is not None:
            await asyncio.shield(self._snapshot_save)
        return self._snapshot_index

    def snapshots(self) -> list[SnapshotInfo]:
        """This node's snapshot files, newest first."""
        return self.storage.list_snapshots()

    def latest_snapshot(self) -> Snapshot | None:
        return self.storage.latest_snapshot()

    def events(self, after: int, limit: int) -> EventPage:
        """Committed entries with index > ``after`` (at most ``limit``), applied on this node."""
        self._check_running()
        applied = self._applied
        events = [
            self._event(entry)
            for entry in self.storage.read_entries(after, limit)
            if entry.index <= applied
        ]
        return EventPage(self.storage.first_index(), applied, self._snapshot_index, events)

    def _event(self, entry: Entry) -> CommittedEvent:
        noop = entry.type is EntryType.NOOP
        outcome = None if noop else self._sm.outcome(entry.index)
        return CommittedEvent(entry.index, entry.term, noop, entry.data, outcome)

    def subscribe(self, listener: Callable[[CommittedEvent], None]) -> Callable[[], None]:
        """Offer every entry applied from now on to ``listener`` (see ``event_listeners``)."""
        self.event_listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self.event_listeners.remove(listener)

        return unsubscribe

    @property
    def halted_reason(self) -> str | None:
        """Why the node stopped serving (a disk error, a corrupt entry), or None."""
        return None if self.halted is None else repr(self.halted)

    def status(self) -> NodeStatus:
        core = self.core
        cs = core.status()
        match = {p.node_id: p.match_index for p in cs.peers}
        leader = cs.leader_id
        leader_member = self.settings.member(leader) if leader else None
        role = {Role.LEADER: "leader", Role.FOLLOWER: "follower"}.get(cs.role, "candidate")
        peers = tuple(
            PeerInfo(
                node_id=m.node_id,
                raft_addr=str(m.raft),
                http_addr=m.http_url,
                reachable=self.transport.reachable(m.node_id),
                match_index=match.get(m.node_id) if cs.role is Role.LEADER else None,
            )
            for m in self.settings.peers
        )
        return NodeStatus(
            node_id=self.node_id,
            role=role,
            term=cs.term,
            leader_id=leader,
            leader_http=leader_member.http_url if leader_member else None,
            commit_index=cs.commit_index,
            applied_index=self._applied,
            last_log_index=cs.last_log_index,
            snapshot_index=self._snapshot_index,
            peers=peers,
        )

    # -- inputs --------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        if self._core is None or self.halted is not None:
            return
        self._core.step(msg)
        self._wakeup.set()

    def _on_peer_change(self, peer: str, up: bool) -> None:
        core = self._core
        log.info(
            "peer %s node=%s peer=%s term=%d index=%d",
            "connected" if up else "disconnected",
            self.node_id,
            peer,
            core.term if core else 0,
            core.last_index if core else 0,
        )
        if not up and self._core is not None:
            self._core.report_unreachable(peer)

    def _on_tick(self) -> None:
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Catch up on missed ticks after a stall, but never run more than a few at once.
        ticks = 0
        while self._next_tick <= now and ticks < 5:
            if self._core is not None and self.halted is None:
                self._core.tick()
            self._next_tick += self._tick_interval
            ticks += 1
        if self._next_tick <= now:
            self._next_tick = now + self._tick_interval
        self._tick_handle = loop.call_at(self._next_tick, self._on_tick)
        self._wakeup.set()

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        core = self.core
        while not self._stopping and self.halted is None:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                self._issue_reads()
                while core.has_ready() and not self._stopping and self.halted is None:
                    await self._handle_ready(core.ready())
                self._observe_role()
            except Exception as exc:  # a failed disk or an undecodable entry: stop, never diverge
                self._halt(exc)
                return

    async def _handle_ready(self, rd: Ready) -> None:
        core = self.core
        send = self.transport.send
        hard_state = self._hard_state_to_sync(rd)
        early = sendable_before_persist(rd, self._synced_hard_state)
        replies = []
        for msg in rd.messages:
            if msg.type in early:
                send(msg)
            else:
                replies.append(msg)
        if hard_state is not None or rd.entries or rd.snapshot is not None:
            # On the disk thread: meanwhile requests are accepted and messages stepped, which
            # makes the next batch bigger (group commit) instead of stalling the node.
            await asyncio.get_running_loop().run_in_executor(
                self._disk, self.storage.persist, hard_state, rd.entries, rd.snapshot
            )
            if hard_state is not None:
                self._synced_hard_state = hard_state
        for msg in replies:  # votes and acks: only now that what they promise is durable
            send(msg)
        if rd.snapshot is not None:
            await self._install_snapshot(rd.snapshot)
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        for rs in rd.read_states:
            batch = self._reads_issued.pop(rs.context, None)
            if batch is not None:
                self._reads_waiting_apply.append((rs.index, batch.waiters))
        self._release_reads()
        core.advance(rd)
        if self._snapshot_save is None and self._snapshot_due():
            self._start_snapshot()

    def _snapshot_due(self) -> bool:
        """``snapshot_threshold`` entries applied since the last snapshot, weighing at least
        ``snapshot_log_ratio`` of its size: rewriting a big state for a small log is waste."""
        rs = self.settings.raft_settings
        return (
            rs.snapshot_threshold > 0
            and self._applied - self._snapshot_index >= rs.snapshot_threshold
            and self._log_bytes_since_snapshot >= rs.snapshot_log_ratio * self._snapshot_bytes
        )

    def _hard_state_to_sync(self, rd: Ready) -> HardState | None:
        """The hard state to write with this Ready, or None when no write is owed.

        Term and vote must be durable before any reply that depends on them. The commit
        index need not be (Raft treats it as volatile: a restarted node relearns it), so a
        change of commit alone does not cost an fsync; it rides along with the next write.
        """
        if rd.hard_state is not None:
            self._latest_hard_state = rd.hard_state
        latest, synced = self._latest_hard_state, self._synced_hard_state
        if latest == synced:
            return None
        if (
            rd.entries
            or rd.snapshot is not None
            or (latest.term, latest.vote)
            != (
                synced.term,
                synced.vote,
            )
        ):
            return latest
        return None

    def outcome(self, index: int) -> object:
        """The recorded outcome of the entry at ``index``, if still held in the log."""
        return self._sm.outcome(index)

    def _apply(self, entries: list[Entry]) -> None:
        started = time.perf_counter()
        pending = self._pending
        listeners = self.event_listeners
        for entry in entries:
            if entry.index <= self._applied:
                continue  # covered by a snapshot already restored
            result: object = None
            if entry.type is EntryType.NORMAL:
                result = self._sm.apply(entry.index, entry.data)
            self._applied = entry.index
            self._log_bytes_since_snapshot += len(entry.data) + _ENTRY_OVERHEAD_BYTES
            if listeners:
                event = CommittedEvent(
                    entry.index, entry.term, entry.type is EntryType.NOOP, entry.data, result
                )
                for listener in list(listeners):
                    listener(event)
            waiter = pending.pop(entry.index, None)
            if waiter is not None and not waiter.future.done():
                if waiter.term == entry.term:
                    waiter.future.set_result(result)
                    self.counters.proposals["committed"] += 1
                else:  # our entry was replaced by another leader's
                    waiter.future.set_exception(OutcomeUnknownError(entry.index, waiter.term))
                    self.counters.proposals["outcome_unknown"] += 1
        self.counters.apply_seconds_total += time.perf_counter() - started
        self.counters.applied_entries += len(entries)

    async def _install_snapshot(self, snapshot: Snapshot) -> None:
        # Decoding a big state takes seconds: on a worker thread, so the loop keeps serving
        # (reads meanwhile see the state before the snapshot; nothing is applied until then).
        started = time.perf_counter()
        await asyncio.to_thread(self._sm.restore, snapshot.data)
        self._sm.forget_outcomes(snapshot.meta.index)  # the log now starts after it
        self._applied = snapshot.meta.index
        self._snapshot_index = snapshot.meta.index
        self._snapshot_bytes = len(snapshot.data)
        self._log_bytes_since_snapshot = 0
        settle_long_lived()
        log.info(
            "snapshot installed node=%s term=%d index=%d size=%d restore_ms=%.0f",
            self.node_id,
            self.core.term,
            snapshot.meta.index,
            len(snapshot.data),
            (time.perf_counter() - started) * 1000,
        )

    def _start_snapshot(self) -> None:
        """Capture the state at the applied index now; encode and save it off the loop.

        On the loop only the capture runs (O(1) for the farm). The snapshot thread encodes it;
        then the core drops its log prefix (keeping the snapshot for laggards) and the disk
        thread writes the file and compacts storage, which keeps the last
        ``snapshot_trailing_entries`` entries for event readers. A crash in between recovers
        from the previous snapshot and the full log.
        """
        index = self._applied
        if index <= self.core.snapshot_index:
            # The core already holds a newer snapshot from the leader, not yet installed here:
            # it replaces the state we would capture, and the core can no longer compact at
            # ``index``. The install that follows sets the snapshot index.
            return
        started = time.perf_counter()
        capture = self._sm.capture()
        captured_ms = (time.perf_counter() - started) * 1000
        settle_ms = settle_long_lived() * 1000  # what was captured is long-lived (node.heap)
        self._log_bytes_since_snapshot = 0
        save = asyncio.ensure_future(
            self._save_snapshot(index, capture, started, captured_ms, settle_ms)
        )
        self._snapshot_save = save

        def saved(done: asyncio.Future[None]) -> None:
            if self._snapshot_save is done:
                self._snapshot_save = None
            if done.cancelled():
                return
            exc = done.exception()
            if exc is not None:
                self._halt(exc)

        save.add_done_callback(saved)

    async def _save_snapshot(
        self,
        index: int,
        capture: StateCapture,
        started: float,
        captured_ms: float,
        settle_ms: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._encoder, capture.encode)
        if self._stopping or self.halted is not None or index <= self.core.snapshot_index:
            return  # stopping, or a snapshot from the leader replaced this state meanwhile
        snapshot = self.core.compact(index, data)
        await loop.run_in_executor(self._disk, self.storage.save_local_snapshot, snapshot)
        self._snapshot_index = max(self._snapshot_index, index)
        self._snapshot_bytes = len(data)
        self._sm.forget_outcomes(self.storage.first_index() - 1)
        self.counters.snapshots += 1
        log.info(
            "snapshot taken and log compacted node=%s term=%d index=%d size=%d "
            "capture_ms=%.2f gc_freeze_ms=%.2f total_ms=%.1f first_index=%d",
            self.node_id,
            self.core.term,
            index,
            len(data),
            captured_ms,
            settle_ms,
            (time.perf_counter() - started) * 1000,
            self.storage.first_index(),
        )

    # -- reads ---------------------------------------------------------------------------

    def _issue_reads(self) -> None:
        # Every tick wakes the loop, so lost read requests are retried from here.
        now = time.monotonic()
        for ctx, batch in list(self._reads_issued.items()):
            live = [f for f in batch.waiters if not f.done()]
            if not live:
                del self._reads_issued[ctx]
            elif now - batch.issued_at > READ_RETRY_S:
                del self._reads_issued[ctx]
                self._reads_unissued.extend(live)
        waiters = [f for f in self._reads_unissued if not f.done()]
        self._reads_unissued = []
        if not waiters:
            return
        ctx = next(self._read_ids).to_bytes(8, "big")
        self._reads_issued[ctx] = _ReadBatch(waiters, now)
        self.core.read_index(ctx)

    def _release_reads(self) -> None:
        queue = self._reads_waiting_apply
        kept: deque[tuple[int, list[asyncio.Future[None]]]] = deque()
        while queue:
            index, waiters = queue.popleft()
            if index <= self._applied:
                for f in waiters:
                    if not f.done():
                        f.set_result(None)
            else:
                kept.append((index, waiters))
        self._reads_waiting_apply = kept

    # -- role changes --------------------------------------------------------------------

    def _observe_role(self) -> None:
        core = self.core
        role, term, leader = core.role, core.term, core.leader_id
        if role is self._last_role and term == self._last_term and leader == self._last_leader:
            return
        # A single voter wins before the loop ever sees it campaigning: a new term entered
        # as leader is an election too.
        campaigning = role is Role.CANDIDATE and (
            self._last_role is not Role.CANDIDATE or term != self._last_term
        )
        if campaigning or (role is Role.LEADER and term != self._last_term):
            self.counters.elections += 1
            log.info(
                "election started node=%s term=%d index=%d", self.node_id, term, core.last_index
            )
        if role is not self._last_role:
            log.info(
                "role changed node=%s term=%d from=%s to=%s leader=%s commit=%d",
                self.node_id,
                term,
                self._last_role.value,
                role.value,
                leader,
                core.commit_index,
            )
        elif leader != self._last_leader:
            log.info("leader changed node=%s term=%d leader=%s", self.node_id, term, leader)
        if self._last_role is Role.LEADER and (role is not Role.LEADER or term != self._last_term):
            # Proposals of the current term survive if we lead it (we may have lost and won
            # leadership again between two looks); those of ended terms are in doubt.
            self._fail_pending(keep_term=term if role is Role.LEADER else None)
        self._last_role, self._last_term, self._last_leader = role, term, leader
        for listener in self.role_listeners:
            listener(role, term, leader)

    def _fail_pending(self, keep_term: int | None = None) -> None:
        """Fail waiting proposals as "outcome unknown": each may still commit elsewhere."""
        kept: dict[int, _Pending] = {}
        for index, p in self._pending.items():
            if p.term == keep_term:
                kept[index] = p
            elif not p.future.done():
                p.future.set_exception(OutcomeUnknownError(index, p.term))
                self.counters.proposals["outcome_unknown"] += 1
        self._pending = kept

    def _fail_all(self, exc: Exception) -> None:
        """Stopping or halted: proposals are in doubt, reads fail with ``exc``."""
        self._fail_pending()
        waiters = list(self._reads_unissued)
        for batch in self._reads_issued.values():
            waiters.extend(batch.waiters)
        for _, ws in self._reads_waiting_apply:
            waiters.extend(ws)
        for f in waiters:
            if not f.done():
                f.set_exception(exc)
        self._reads_unissued, self._reads_issued = [], {}
        self._reads_waiting_apply = deque()

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
