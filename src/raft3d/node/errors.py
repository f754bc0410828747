"""Errors the node driver raises to its callers (the HTTP layer, tests), including those of
the layers below it that reach them (the core's, storage's)."""

from __future__ import annotations

from raft3d.consensus.membership import (
    ConfChangeError,
    ConfChangeInProgressError,
    LeadershipTransferError,
    MemberExistsError,
    NoCommitInTermError,
    NotAVoterError,
    UnknownMemberError,
)
from raft3d.consensus.types import EntryTooLargeError, NotLeaderError, RaftError
from raft3d.storage.errors import StorageError

__all__ = [
    "ConfChangeError",
    "ConfChangeInProgressError",
    "EntryTooLargeError",
    "ForwardLostError",
    "LeadershipTransferError",
    "LearnerNotCaughtUpError",
    "MemberExistsError",
    "NoCommitInTermError",
    "NoLeaderError",
    "NodeStoppedError",
    "NotAVoterError",
    "NotCommittedError",
    "NotLeaderError",
    "OutcomeUnknownError",
    "RaftError",
    "StorageError",
    "TransferRefusedError",
    "UnknownMemberError",
    "WouldLoseQuorumError",
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


class ForwardLostError(OutcomeUnknownError):
    """A proposal forwarded to the leader got no answer (the leader, or the link to it, was
    lost): the leader may have appended it, so it may still commit."""

    def __init__(self, leader: str, why: str) -> None:
        RaftError.__init__(
            self,
            f"the write was forwarded to leader {leader}, which did not answer ({why})",
        )
        self.index = 0
        self.term = 0


class NotCommittedError(RaftError):
    """Another entry was applied at the index a forwarded proposal was appended at: it
    certainly did not commit, and proposing it again is safe. The node's ``propose`` does
    that itself; callers never see this error."""

    def __init__(self, index: int, term: int) -> None:
        self.index = index
        self.term = term
        super().__init__(f"entry {index} of term {term} was replaced by another leader's")


class NoLeaderError(RaftError):
    """No leader (or no quorum) answered within the caller's deadline."""


class NodeStoppedError(RaftError):
    """The node is shutting down or has halted."""


class WouldLoseQuorumError(ConfChangeError):
    """Removing the member would leave fewer reachable voters than a quorum of the voters
    that remain (pass ``force`` to remove it anyway)."""

    def __init__(self, node: str, reachable: int, quorum: int) -> None:
        self.node_id = node
        self.reachable = reachable
        self.quorum = quorum
        super().__init__(
            f"removing {node!r} would leave {reachable} reachable voters, fewer than the "
            f"quorum of {quorum} the remaining voters need"
        )


class LearnerNotCaughtUpError(ConfChangeError):
    """A learner asked to be promoted by hand has not caught up with the leader's log (or
    never answered): as a voter it could cost the quorum. ``force`` insists."""

    def __init__(self, node: str, match: int, last: int) -> None:
        self.node_id = node
        self.match_index = match
        self.last_index = last
        super().__init__(
            f"learner {node!r} has not caught up (match index {match} of {last}); "
            "retry once it has, or ?force=true"
        )


class TransferRefusedError(ConfChangeError):
    """Leadership cannot be handed to the requested (or any) voter now."""


def address_in_use(node: str, raft_addr: str) -> MemberExistsError:
    """``MemberExistsError`` for a raft address that member ``node`` already uses."""
    exc = MemberExistsError(node)
    exc.args = (f"raft address {raft_addr} is already used by member {node!r}",)
    return exc
