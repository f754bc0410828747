"""What a node does with each Ready, as one synchronous piece with no I/O.

The asyncio driver (``raft3d.node.driver``) and the deterministic simulation
(``tests/simulation``) both run every Ready through this: what must be written, which messages
may go before the write and which only after it, applying committed entries and answering
their proposers, releasing read barriers, and when a snapshot is due. The caller does the
I/O in between, in the order of the Ready contract (``raft3d.consensus.types.Ready``)::

    plan = step.plan(rd)            # send plan.early now
    storage.persist(*plan.write)     # when plan.write is not None; then step.written(plan)
    ...                              # send plan.late
    step.finish(rd); core.advance(rd)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from raft3d.consensus.sending import sendable_before_persist
from raft3d.consensus.types import (
    Entry,
    EntryType,
    HardState,
    Message,
    Ready,
    Snapshot,
)
from raft3d.node.proposals import Proposals
from raft3d.node.reads import ReadBarriers
from raft3d.node.seams import StateMachine

R = TypeVar("R")

# Per-entry bookkeeping counted with an entry's data when weighing the log against a snapshot.
ENTRY_OVERHEAD_BYTES = 32


@dataclass(slots=True)
class NodeCounters:
    """Plain counters the metrics layer reads at scrape time."""

    elections: int = 0
    snapshots: int = 0
    proposals: dict[str, int] = field(
        default_factory=lambda: {"committed": 0, "outcome_unknown": 0, "not_leader": 0}
    )
    forwarded: dict[str, int] = field(default_factory=dict)  # raft3d.node.forwarding
    apply_seconds_total: float = 0.0
    applied_entries: int = 0


@dataclass(slots=True)
class Write:
    """What one Ready makes durable, in ``Storage.persist`` argument order. Once it is
    durable, a received snapshot's bytes may be dropped from it (``ReadyCarrier``)."""

    hard_state: HardState | None
    entries: list[Entry]
    snapshot: Snapshot | None


@dataclass(frozen=True, slots=True)
class ReadyPlan:
    write: Write | None  # None: nothing to write (or only a commit index, which may wait)
    early: list[Message]  # may go before the write is durable
    late: list[Message]  # only once it is


class ReadyStep(Generic[R]):
    """One node's per-Ready bookkeeping around its state machine.

    ``durable`` is the hard state on disk when the node starts; ``applied`` the index its
    state machine is at (that of the snapshot it restored). ``on_apply``, if given, sees
    every committed entry (no-ops too) after it is applied. ``sync_commit`` makes every
    change of the commit index a write of its own (the node leaves it volatile; see
    ``_write``).
    """

    def __init__(
        self,
        machine: StateMachine[R],
        *,
        durable: HardState,
        applied: int,
        snapshot_threshold: int,
        read_retry: float,
        snapshot_log_ratio: float = 0.0,
        snapshot_phase: float | None = None,
        read_context_prefix: bytes = b"",
        counters: NodeCounters | None = None,
        on_apply: Callable[[Entry], None] | None = None,
        sync_commit: bool = False,
    ) -> None:
        self._sm = machine
        self.counters = counters if counters is not None else NodeCounters()
        self.proposals: Proposals[R] = Proposals(self.counters.proposals)
        self.reads = ReadBarriers(read_retry, read_context_prefix)
        self._latest = self.durable = durable
        self.applied = applied
        self.snapshot_index = applied
        self._threshold = snapshot_threshold
        self._log_ratio = snapshot_log_ratio
        # Where in each run of ``snapshot_threshold`` indexes this node's snapshots fall, so
        # that the nodes of a cluster do not all snapshot at once (``snapshot_due``).
        self._phase = None if snapshot_phase is None else int(snapshot_phase * snapshot_threshold)
        self._on_apply = on_apply
        self._sync_commit = sync_commit
        # For the threshold: log bytes applied since the last capture, and the size of the
        # last snapshot (set by the caller once it knows it).
        self.log_bytes_since_capture = 0
        self.snapshot_bytes = 0
        # A snapshot the caller restores the machine from over time (``begin_restore``), and
        # the committed entries held meanwhile, to apply after it in order.
        self.restoring: Snapshot | None = None
        self._held: list[Entry] = []

    def outcome(self, index: int) -> R | None:
        """What applying ``index`` returned, while the machine still holds it."""
        return self._sm.outcome(index)

    # --- before and around the write ------------------------------------------------------

    def plan(self, rd: Ready, *, early_send: bool = True) -> ReadyPlan:
        write = self._write(rd)
        if not early_send:
            return ReadyPlan(write, [], rd.messages)
        early_types = sendable_before_persist(rd, self.durable)
        early: list[Message] = []
        late: list[Message] = []
        for msg in rd.messages:
            (early if msg.type in early_types else late).append(msg)
        return ReadyPlan(write, early, late)

    def _write(self, rd: Ready) -> Write | None:
        """Term and vote must be durable before any reply that depends on them. The commit
        index need not be (Raft treats it as volatile: a restarted node relearns it), so a
        change of commit alone costs no fsync; it rides along with the next write."""
        if rd.hard_state is not None:
            self._latest = rd.hard_state
        latest, durable = self._latest, self.durable
        hard_state = None
        if latest != durable and (
            self._sync_commit
            or rd.entries
            or rd.snapshot is not None
            or (latest.term, latest.vote) != (durable.term, durable.vote)
        ):
            hard_state = latest
        if hard_state is None and not rd.entries and rd.snapshot is None:
            return None
        return Write(hard_state, rd.entries, rd.snapshot)

    def written(self, plan: ReadyPlan) -> None:
        """``plan.write`` is durable."""
        if plan.write is not None and plan.write.hard_state is not None:
            self.durable = plan.write.hard_state

    def unwritten_hard_state(self) -> HardState | None:
        """A newer hard state than the durable one (a commit index only), to keep on stop."""
        return None if self._latest == self.durable else self._latest

    # --- after the write ------------------------------------------------------------------

    def finish(self, rd: Ready, *, restored: bool = False) -> None:
        """Install, apply and release what ``rd`` carries; the caller then advances.

        ``restored``: the caller already restored the machine from ``rd.snapshot`` (off the
        event loop)."""
        if rd.snapshot is not None and rd.snapshot is not self.restoring:
            self.install(rd.snapshot, restored=restored)
        if rd.committed_entries:
            if self.holding:
                self._held.extend(rd.committed_entries)
            else:
                self._apply(rd.committed_entries)
        for rs in rd.read_states:
            self.reads.confirmed(rs)
        self.reads.release(self.applied)

    def install(
        self,
        snapshot: Snapshot,
        *,
        restored: bool = False,
        log_from: int | None = None,
        size: int | None = None,
    ) -> None:
        """``log_from``: the first index the log holds (a node starting from its own
        snapshot keeps trailing entries below it); after the snapshot when not given.
        ``size``: the snapshot's size, when its data was not in ``snapshot`` (a file)."""
        if not restored:
            self._sm.restore(snapshot.data)
        self._sm.forget_outcomes((snapshot.meta.index + 1 if log_from is None else log_from) - 1)
        self.applied = self.snapshot_index = snapshot.meta.index
        self.snapshot_bytes = len(snapshot.data) if size is None else size
        self.log_bytes_since_capture = 0

    def _apply(self, entries: list[Entry]) -> None:
        started = time.perf_counter()
        machine, proposals = self._sm, self.proposals
        on_apply = self._on_apply
        for entry in entries:
            index = entry.index
            if index <= self.applied:
                continue  # covered by a snapshot already restored
            self.log_bytes_since_capture += len(entry.data) + ENTRY_OVERHEAD_BYTES
            if entry.type is EntryType.NORMAL:
                result = machine.apply(index, entry.data)
                self.applied = index
                proposals.applied(index, entry.term, result)
            else:
                self.applied = index
                proposals.replaced(index)
            if on_apply is not None:
                on_apply(entry)
        self.counters.apply_seconds_total += time.perf_counter() - started
        self.counters.applied_entries += len(entries)

    # --- a restore that takes time (the driver's; the simulation restores in ``finish``) ---

    def begin_restore(self, snapshot: Snapshot) -> None:
        """The caller restores the machine from ``snapshot`` in steps, between Readies: pass
        the Ready that carries it to ``finish`` as usual. Until ``restored``, and until the
        entries held meanwhile are applied (``apply_held``), committed entries are held, not
        applied; the applied index stays where it was, so read barriers wait."""
        self.restoring = snapshot
        self._held = [entry for entry in self._held if entry.index > snapshot.meta.index]

    @property
    def holding(self) -> bool:
        """Committed entries wait for a restore in progress (or for those held during it)."""
        return self.restoring is not None or bool(self._held)

    def restored(
        self, snapshot: Snapshot, log_from: int | None = None, *, size: int | None = None
    ) -> None:
        """The machine now holds ``snapshot``'s state (see ``begin_restore``)."""
        if snapshot is not self.restoring:
            raise RuntimeError("restored a snapshot that is not the one being restored")
        self.restoring = None
        self.install(snapshot, restored=True, log_from=log_from, size=size)

    def apply_held(self, limit: int) -> bool:
        """Apply up to ``limit`` of the entries held during a restore; True while some are
        left. Releases the reads they make possible."""
        if self.restoring is not None:
            return bool(self._held)
        batch, self._held = self._held[:limit], self._held[limit:]
        if batch:
            self._apply(batch)
            self.reads.release(self.applied)
        return bool(self._held)

    # --- snapshots ------------------------------------------------------------------------

    def snapshot_due(self) -> bool:
        """``snapshot_threshold`` entries applied since the last snapshot, weighing at least
        ``snapshot_log_ratio`` of its size: rewriting a big state for a small log is waste.

        With a phase, the entries are counted to this node's next snapshot point instead
        (the indexes ``phase + k * snapshot_threshold``) that is at least half a threshold
        after the last snapshot. Every node applies the same log, so with one threshold they would
        all snapshot at the same index, and a write's quorum would wait on a node that is
        busy snapshotting however it was formed. At c=64, p99 26.1 ms with no snapshots,
        32.8 ms all together, 26.6 ms staggered (``benchmarks/stagger_bench.py``)."""
        threshold, since = self._threshold, self.applied - self.snapshot_index
        if threshold <= 0 or self.holding:
            return False
        if self._phase is None:
            counted = since >= threshold
        else:
            # The first of this node's points at least half a threshold after the last.
            after = self.snapshot_index + threshold // 2 - self._phase
            counted = self.applied >= self._phase + -(-after // threshold) * threshold
        return counted and self.log_bytes_since_capture >= self._log_ratio * self.snapshot_bytes

    def snapshot_point(self, core_snapshot_index: int) -> int | None:
        """The index to snapshot at now, or None. None also when the core already holds a
        newer snapshot (one received from the leader, not yet installed here): that replaces
        the state we would capture, and its install sets the snapshot index."""
        index = self.applied
        if index <= core_snapshot_index or index <= self.snapshot_index:
            return None
        return index

    def captured(self) -> None:
        """A snapshot at the applied index was captured: its log starts counting anew."""
        self.log_bytes_since_capture = 0

    def compacted(self, index: int, first_index: int | None = None) -> None:
        """A snapshot at ``index`` is taken and the log now starts at ``first_index``: the
        outcomes of the entries no longer held are forgotten (they live exactly as long as
        their entries)."""
        self.snapshot_index = max(self.snapshot_index, index)
        self._sm.forget_outcomes((index + 1 if first_index is None else first_index) - 1)
