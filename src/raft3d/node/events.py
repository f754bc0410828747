"""The committed-entry views a node hands out (the event log)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from raft3d.consensus.membership import decode_conf_entry
from raft3d.consensus.types import Entry, EntryType

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class CommittedEvent(Generic[R]):
    """One committed log entry with what applying it returned (None for a leader's no-op,
    or when no longer known)."""

    index: int
    term: int
    is_noop: bool
    data: bytes
    outcome: R | None
    # A membership change: (``"add_learner"`` | ``"promote"`` | ``"remove"``, node id).
    conf_change: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class EventPage(Generic[R]):
    first_index: int  # oldest index still held in the log (older ones were compacted)
    last_index: int  # newest index applied on this node
    snapshot_index: int  # index of the newest durable snapshot
    events: list[CommittedEvent[R]]


def conf_change_of(data: bytes) -> tuple[str, str]:
    """What a committed membership entry changed: (change, node id); the core applied it,
    so it decodes (a damaged one would have halted the node first)."""
    try:
        change, _ = decode_conf_entry(data)
    except ValueError:
        return ("unknown", "")
    return (change.type.name.lower(), str(change.node_id))


class EventFeed(Generic[R]):
    """Log entries as events, with the outcome the state machine recorded for each; and the
    listeners that are offered every entry as it is applied (the SSE stream). A listener
    must return at once (one that cannot keep up drops itself)."""

    def __init__(self, outcome: Callable[[int], R | None]) -> None:
        self._outcome = outcome
        self.listeners: list[Callable[[CommittedEvent[R]], None]] = []

    def event(self, entry: Entry) -> CommittedEvent[R]:
        noop = entry.type is EntryType.NOOP
        if entry.type is EntryType.CONF_CHANGE:
            return CommittedEvent(
                entry.index, entry.term, False, entry.data, None, conf_change_of(entry.data)
            )
        outcome = None if noop else self._outcome(entry.index)
        return CommittedEvent(entry.index, entry.term, noop, entry.data, outcome)

    def offer(self, entry: Entry) -> None:
        if self.listeners:
            event = self.event(entry)
            for listener in list(self.listeners):
                listener(event)

    def subscribe(self, listener: Callable[[CommittedEvent[R]], None]) -> Callable[[], None]:
        self.listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self.listeners.remove(listener)

        return unsubscribe
