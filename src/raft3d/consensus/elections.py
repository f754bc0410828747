"""The elections part of ``RaftCore``: timeouts, pre-votes and votes, and deciding whom to
vote for (the decisions ``_grants_vote`` and ``_candidate_log_ok`` are overridden by
fault-injection tests)."""

from __future__ import annotations

from raft3d.consensus import quorum
from raft3d.consensus.parts import LEADER_MESSAGES, CoreParts
from raft3d.consensus.quorum import VoteResult
from raft3d.consensus.types import TRANSFER_CONTEXT, Message, MsgType, Role


class Elections(CoreParts):
    def _reset_election_timer(self) -> None:
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        ticks = self._cfg.election_ticks
        self._randomized_timeout = ticks + self._rng.randrange(ticks)

    def _in_leader_lease(self) -> bool:
        """Heard from a live leader within the minimum election timeout (or are one). Vote
        requests are then ignored (leader stickiness, Raft thesis 4.2.3), with or without
        check-quorum: a node that missed its own removal, or a partitioned one, must not
        depose a leader that everyone else still hears."""
        return self._leader_id is not None and self._election_elapsed < self._cfg.election_ticks

    def _start_election(self) -> None:
        if self._cfg.pre_vote:
            self._become_pre_candidate()
        else:
            self._become_candidate()

    def _become_pre_candidate(self) -> None:
        # Term and vote stay as they are: a pre-vote changes nobody's durable state.
        self._role = Role.PRE_CANDIDATE
        self._leader_id = None
        self._votes = {self._id: True}
        self._reset_election_timer()
        self._clear_leader_state()
        if self._poll() is VoteResult.WON:
            self._become_candidate()
            return
        self._request_votes(MsgType.PRE_VOTE, self._term + 1)

    def _become_candidate(self, transfer: bool = False) -> None:
        self._role = Role.CANDIDATE
        self._term += 1
        self._vote = self._id
        self._leader_id = None
        self._votes = {self._id: True}
        self._reset_election_timer()
        self._clear_leader_state()
        if self._poll() is VoteResult.WON:
            self._become_leader()
            return
        self._request_votes(MsgType.VOTE, self._term, TRANSFER_CONTEXT if transfer else b"")

    def _poll(self) -> VoteResult:
        return quorum.vote_result(self._quorum_voters(), self._votes)

    def _request_votes(self, mtype: MsgType, term: int, context: bytes = b"") -> None:
        last_index = self._log.last_index
        last_term = self._log.last_term
        for peer in self._voters:
            if peer != self._id:
                self._send(
                    mtype, peer, term=term, log_term=last_term, index=last_index, context=context
                )

    def _handle_vote_request(self, msg: Message) -> None:
        pre = msg.type is MsgType.PRE_VOTE
        resp_type = MsgType.PRE_VOTE_RESP if pre else MsgType.VOTE_RESP
        if self._grants_vote(msg):
            if pre:
                self._send(resp_type, msg.frm, term=msg.term)
            else:
                self._vote = msg.frm
                self._election_elapsed = 0
                self._send(resp_type, msg.frm)
        else:
            self._send(resp_type, msg.frm, reject=True)

    def _grants_vote(self, msg: Message) -> bool:
        """Vote (or pre-vote) for the sender? Terms have already been reconciled."""
        if self._recovering:
            return False
        can_vote = (
            self._vote == msg.frm
            or (self._vote is None and self._leader_id is None)
            or (msg.type is MsgType.PRE_VOTE and msg.term > self._term)
        )
        return can_vote and self._candidate_log_ok(msg.index, msg.log_term)

    def _candidate_log_ok(self, last_index: int, last_term: int) -> bool:
        return self._log.is_up_to_date(last_index, last_term)

    def _step_candidate(self, msg: Message) -> None:
        mtype = msg.type
        if mtype in LEADER_MESSAGES:
            # Someone won this term: follow it.
            self._become_follower(msg.term, msg.frm)
            self._step_follower(msg)
            return
        if self._role is Role.PRE_CANDIDATE:
            if mtype is not MsgType.PRE_VOTE_RESP:
                return
            if not msg.reject and msg.term != self._term + 1:
                return  # a grant from an older pre-vote round
        elif mtype is not MsgType.VOTE_RESP:
            return
        self._votes.setdefault(msg.frm, not msg.reject)
        result = self._poll()
        if result is VoteResult.WON:
            if self._role is Role.PRE_CANDIDATE:
                self._become_candidate()
            else:
                self._become_leader()
        elif result is VoteResult.LOST:
            self._become_follower(self._term, None)

    def _answer_stale_sender(self, msg: Message) -> None:
        """A message from an older term. Tell a deposed leader about the newer term (it may be
        cut off from everyone else, or its followers may ignore our votes), and refuse stale
        pre-votes outright."""
        mtype = msg.type
        if mtype in LEADER_MESSAGES:
            # Always: with leader stickiness, the higher-term node may never get the votes
            # that would otherwise depose the stale leader.
            self._send(MsgType.APP_RESP, msg.frm)
        elif mtype is MsgType.PRE_VOTE:
            self._send(MsgType.PRE_VOTE_RESP, msg.frm, reject=True)
