"""Direct tests of the majority arithmetic the core uses for commit, votes and quorum checks."""

from __future__ import annotations

import pytest

from raft3d.consensus.quorum import (
    VoteResult,
    committed_index,
    has_quorum,
    majority,
    vote_result,
)
from raft3d.consensus.read_only import PendingRead, ReadQueue

ABC = ("a", "b", "c")
ABCDE = ("a", "b", "c", "d", "e")


@pytest.mark.parametrize(("size", "need"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_majority_is_more_than_half(size: int, need: int) -> None:
    assert majority([f"n{i}" for i in range(size)]) == need


def test_has_quorum_counts_only_voters() -> None:
    assert has_quorum(ABC, {"a", "b"})
    assert not has_quorum(ABC, {"a"})
    # Ids outside the voter set (a removed node, a learner) count for nothing.
    assert not has_quorum(ABC, {"a", "x", "y"})
    assert has_quorum(("a",), ("a",))
    assert has_quorum(ABCDE, ["c", "d", "e"])
    assert not has_quorum(ABCDE, ["d", "e"])


def test_committed_index_is_what_a_majority_holds() -> None:
    assert committed_index(ABC, {"a": 5, "b": 3, "c": 1}) == 3
    assert committed_index(ABC, {"a": 5, "b": 5, "c": 1}) == 5
    assert committed_index(ABCDE, {"a": 9, "b": 7, "c": 4, "d": 4, "e": 2}) == 4
    assert committed_index(("a",), {"a": 7}) == 7


def test_committed_index_absent_voters_hold_nothing_and_strangers_do_not_count() -> None:
    assert committed_index(ABC, {"a": 5}) == 0
    assert committed_index(ABC, {"a": 5, "b": 4}) == 4
    # A non-voter far ahead does not lift the commit point.
    assert committed_index(ABC, {"a": 5, "x": 9, "y": 9}) == 0
    assert committed_index((), {"a": 5}) == 0


def test_committed_index_depends_on_the_voter_set_given() -> None:
    match = {"a": 9, "b": 8, "c": 2, "d": 1}
    assert committed_index(("a", "b", "c"), match) == 8
    assert committed_index(("a", "c", "d"), match) == 2


def test_vote_result_won_lost_pending() -> None:
    assert vote_result(ABC, {"a": True}) is VoteResult.PENDING
    assert vote_result(ABC, {"a": True, "b": True}) is VoteResult.WON
    assert vote_result(ABC, {"a": True, "b": False}) is VoteResult.PENDING
    assert vote_result(ABC, {"a": True, "b": False, "c": False}) is VoteResult.LOST
    assert vote_result(("a",), {"a": True}) is VoteResult.WON
    assert vote_result(ABCDE, {"a": True, "b": True, "c": True}) is VoteResult.WON
    assert vote_result(ABCDE, {"a": False, "b": False, "c": False}) is VoteResult.LOST


def test_vote_result_ignores_votes_from_non_voters() -> None:
    assert vote_result(ABC, {"a": True, "x": True, "y": True}) is VoteResult.PENDING
    assert vote_result(ABC, {"a": True, "x": False, "y": False}) is VoteResult.PENDING


def test_even_cluster_needs_a_majority_of_refusals_to_lose() -> None:
    four = ("a", "b", "c", "d")
    assert vote_result(four, {"a": True, "b": False, "c": False}) is VoteResult.PENDING
    assert vote_result(four, {"b": False, "c": False, "d": False}) is VoteResult.LOST


def test_read_queue_releases_on_a_majority_of_voter_acks_oldest_first() -> None:
    queue = ReadQueue()
    assert queue.add(PendingRead(b"r1", 4, "a", {"a"}))
    assert queue.add(PendingRead(b"r2", 5, "b", {"a"}))
    assert not queue.add(PendingRead(b"r2", 6, "b", {"a"}))
    assert queue.ack(b"r2", "x", ABC) == []  # not a voter
    released = queue.ack(b"r2", "c", ABC)
    assert [(r.context, r.index, r.requester) for r in released] == [
        (b"r1", 4, "a"),
        (b"r2", 5, "b"),
    ]
    assert len(queue) == 0
    assert queue.ack(b"r1", "b", ABC) == []
