"""The committed-entry views a node hands out (the event log)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

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


@dataclass(frozen=True, slots=True)
class EventPage(Generic[R]):
    first_index: int  # oldest index still held in the log (older ones were compacted)
    last_index: int  # newest index applied on this node
    snapshot_index: int  # index of the newest durable snapshot
    events: list[CommittedEvent[R]]
