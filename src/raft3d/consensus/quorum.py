"""Majority arithmetic over a set of voters: commit index, vote tally, quorum checks.

Every function takes the voter set as an argument, so the same code serves any
configuration (and a joint configuration is two calls, one per voter set). Ids that are not
voters count for nothing; voters with no entry in a mapping count as "not yet".
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

from raft3d.consensus.types import NodeId


class VoteResult(enum.Enum):
    PENDING = "pending"  # neither outcome is certain yet
    WON = "won"  # a majority granted
    LOST = "lost"  # a majority refused


def majority(voters: Collection[NodeId]) -> int:
    """How many voters make a strict majority."""
    return len(voters) // 2 + 1


def has_quorum(voters: Collection[NodeId], ids: Collection[NodeId]) -> bool:
    """Do the voters among ``ids`` form a majority of ``voters``?"""
    return sum(1 for v in voters if v in ids) >= majority(voters)


def committed_index(voters: Collection[NodeId], match: Mapping[NodeId, int]) -> int:
    """The highest index a majority of ``voters`` holds, by their ``match`` indexes (an
    absent voter holds nothing: 0). Whether that index may be committed (its term) is the
    caller's decision."""
    if not voters:
        return 0
    indexes = sorted((match.get(v, 0) for v in voters), reverse=True)
    return indexes[majority(voters) - 1]


def vote_result(voters: Collection[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    """Tally ``votes`` (voter -> granted) cast by ``voters``."""
    need = majority(voters)
    granted = refused = 0
    for v in voters:
        vote = votes.get(v)
        if vote is True:
            granted += 1
        elif vote is False:
            refused += 1
    if granted >= need:
        return VoteResult.WON
    if refused >= need:
        return VoteResult.LOST
    return VoteResult.PENDING
