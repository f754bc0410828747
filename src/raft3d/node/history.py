"""The node's record of what it applied, as its callers read it: committed events (a page
of the log, or a feed of what is applied from now on), outcomes, and snapshots (taking one,
listing them). Mixed into ``RaftNode`` (``raft3d.node.driver``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from raft3d.consensus import RaftCore
from raft3d.consensus.types import Snapshot
from raft3d.node.events import CommittedEvent, EventFeed, EventPage
from raft3d.node.ready import ReadyStep
from raft3d.node.seams import SnapshotRecord, StateMachine, Storage
from raft3d.node.snapshotting import Snapshotter

R = TypeVar("R")


class NodeHistory(Generic[R]):
    storage: Storage
    _sm: StateMachine[R]
    _events: EventFeed[R]
    _snapshots: Snapshotter[R]
    _step: ReadyStep[R] | None

    # --- provided by RaftNode ---------------------------------------------------------------

    @property
    def core(self) -> RaftCore:
        raise NotImplementedError

    @property
    def step(self) -> ReadyStep[Any]:
        raise NotImplementedError

    def _check_running(self) -> None:
        raise NotImplementedError

    # --- snapshots --------------------------------------------------------------------------

    async def take_snapshot(self) -> int:
        """Snapshot the state machine now (at the applied index) and wait until it is durable.

        Returns the index of the newest snapshot (unchanged if nothing was applied since, or
        if a snapshot received from the leader is about to replace the applied state).
        """
        self._check_running()
        snapshots = self._snapshots
        if snapshots.pending is not None:
            await asyncio.shield(snapshots.pending)
        snapshots.start(self.core, self.step)
        if snapshots.pending is not None:
            await asyncio.shield(snapshots.pending)
        return self.step.snapshot_index

    def snapshots(self) -> list[SnapshotRecord]:
        """This node's snapshot files, newest first."""
        return list(self.storage.list_snapshots())

    def latest_snapshot(self) -> Snapshot | None:
        return self.storage.latest_snapshot()

    # --- what was applied -------------------------------------------------------------------

    @property
    def applied_index(self) -> int:
        return 0 if self._step is None else self._step.applied

    @property
    def restoring(self) -> bool:
        """The state is being replaced from a snapshot: what it holds now is stale."""
        return self._step is not None and self._step.holding

    def outcome(self, index: int) -> R | None:
        """The recorded outcome of the entry at ``index``, if still held in the log."""
        return self._sm.outcome(index)

    def events(self, after: int, limit: int) -> EventPage[R]:
        """Committed entries with index > ``after`` (at most ``limit``), applied on this node."""
        self._check_running()
        step = self.step
        applied = step.applied
        events = [
            self._events.event(entry)
            for entry in self.storage.read_entries(after, limit)
            if entry.index <= applied
        ]
        return EventPage(self.storage.first_index(), applied, step.snapshot_index, events)

    def subscribe(self, listener: Callable[[CommittedEvent[R]], None]) -> Callable[[], None]:
        """Offer every entry applied from now on to ``listener``; returns the unsubscriber."""
        return self._events.subscribe(listener)

    @property
    def event_listeners(self) -> list[Callable[[CommittedEvent[R]], None]]:
        return self._events.listeners
