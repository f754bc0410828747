"""Deliberately broken variants of the core and of storage, for testing the checker.

Each one reintroduces a classic Raft bug by overriding a single decision of ``RaftCore`` (or
of the simulated storage). None of this exists in production code; the simulation must
report every one of them as an invariant violation.
"""

from __future__ import annotations

from raft3d.consensus import HardState, Message, NodeId, RaftCore, quorum
from raft3d.consensus.progress import Progress

from .storage import MemoryStorage


class ForgetsVoteStorage(MemoryStorage):
    """The vote never reaches the disk: after a restart the node may vote again in the same
    term, for someone else."""

    def save_hard_state(self, hard_state: HardState) -> None:
        super().save_hard_state(HardState(hard_state.term, None, hard_state.commit))


class CommitsOldTermByCount(RaftCore):
    """Commits an entry of an earlier term as soon as a majority stores it (Figure 8 of the
    Raft paper): a later leader may still overwrite it."""

    def _commit_candidate(self) -> int:
        index = quorum.committed_index(self._voters, self._match_indexes())
        return max(index, self._log.committed)


class TruncatesMatchingSuffix(RaftCore):
    """A follower treats every APP as the definitive end of its log and drops any entries
    after the new ones, even though they match the leader's (a delayed or duplicated APP
    then erases entries it already acknowledged)."""

    def _handle_append(self, msg: Message) -> None:
        super()._handle_append(msg)
        log = self._log
        end = msg.index + len(msg.entries)
        if log.term_at(msg.index) == msg.log_term and max(end, log.committed) < log.last_index:
            log.truncate_from(max(end, log.committed) + 1)


class CountsOwnUnpersistedEntries(RaftCore):
    """The leader counts entries toward the commit quorum as soon as it appends them,
    before they are durable on its own disk."""

    def _own_match(self) -> int:
        return self._log.last_index


class VotesForStaleLogs(RaftCore):
    """Grants votes without checking that the candidate's log is at least as up to date."""

    def _candidate_log_ok(self, last_index: int, last_term: int) -> bool:
        return True


class HeartbeatCommitsUnacknowledged(RaftCore):
    """Heartbeats carry the leader's full commit index, so a follower marks committed
    whatever it happens to hold there, even entries a newer leader is about to replace."""

    def _heartbeat_commit(self, pr: Progress) -> int:
        return self._log.committed


class ReadsBeforeCommittingInTerm(RaftCore):
    """A new leader answers ReadIndex before its no-op commits, with a commit index that may
    lag behind what its predecessor acknowledged."""

    def _may_serve_reads(self) -> bool:
        return True


# --- membership ------------------------------------------------------------------------------


class ChangesBeforeCommittingInTerm(RaftCore):
    """A new leader proposes a configuration change before any entry of its own term has
    committed (the single-server algorithm as first published, before its erratum)."""

    def _committed_in_term(self) -> bool:
        return True


class CountsLearnersInQuorum(RaftCore):
    """Learners count toward every quorum as if they were voters."""

    def _quorum_voters(self) -> tuple[NodeId, ...]:
        return self._conf.voters + self._conf.learners


class WipedNodeVotesAtOnce(RaftCore):
    """No recovery mode: a node that lost its data directory votes (and campaigns) as soon
    as it restarts, as a blank voter."""

    def begin_recovery(self) -> None:
        pass


class AllowsTwoChangesInFlight(RaftCore):
    """A configuration change may be proposed while the previous one is uncommitted."""

    def _conf_change_pending(self) -> bool:
        return False
