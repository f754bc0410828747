"""Errors the node driver raises to its callers (the HTTP layer, tests), including those of
the layers below it that reach them (the core's, storage's)."""

from __future__ import annotations

from raft3d.consensus.types import EntryTooLargeError, NotLeaderError, RaftError
from raft3d.storage.errors import StorageError

__all__ = [
    "EntryTooLargeError",
    "NoLeaderError",
    "NodeStoppedError",
    "NotLeaderError",
    "OutcomeUnknownError",
    "RaftError",
    "StorageError",
]


class OutcomeUnknownError(RaftError):
    """The proposal's term ended before it was seen to commit.

    It may still commit under a later leader, or it may be gone: the caller cannot know.
    """

    def __init__(self, index: int, term: int) -> None:
        self.index = index
        self.term = term
        super().__init__(
            f"leadership changed before entry {index} (term {term}) was seen to commit: "
            "outcome unknown"
        )


class NoLeaderError(RaftError):
    """No leader (or no quorum) answered within the caller's deadline."""


class NodeStoppedError(RaftError):
    """The node is shutting down or has halted."""
