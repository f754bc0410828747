"""The parts of ``RaftCore`` that change who is in the cluster and who leads it.

- Configuration changes (``propose_conf_change``): single-server changes through the log, see
  ``membership``. The leader refuses one until an entry of its own term is committed (the
  erratum to the Raft thesis' single-server algorithm: otherwise a change appended by a
  deposed leader and one appended by its successor could have disjoint majorities) and while
  another change is uncommitted.
- Automatic promotion: the leader promotes a learner once its log is within ``promote_lag``
  entries of the leader's (unless the learner was added with ``auto_promote=False``).
- Leadership transfer (``transfer_leadership``): the leader stops accepting proposals, brings
  the target up to date, then sends it TIMEOUT_NOW; the target campaigns at once, skipping
  pre-vote, and its vote requests say so (``TRANSFER_CONTEXT``) so that voters do not refuse
  them for having heard from the leader recently. The transfer is abandoned after an election
  timeout.
- A leader that removes itself keeps leading (without counting itself toward any quorum)
  until the removal commits; then it sends TIMEOUT_NOW to the most up-to-date voter if that
  one holds its whole log, and steps down.
- A removed peer keeps receiving the log from the leader that removed it until it holds its
  removal and that committed (``_leaving``); it counts toward nothing meanwhile. A node that
  is not a voter of its own configuration never campaigns.
- Messages from non-members are ignored, except a leader's (a joining node learns the log
  from a leader it does not know yet) and vote requests while no leader is heard from (the
  candidate may be a voter of a configuration this node has not received yet).
"""

from __future__ import annotations

from raft3d.consensus.config import CoreConfig
from raft3d.consensus.log import RaftLog
from raft3d.consensus.membership import (
    ConfChange,
    ConfChangeInProgressError,
    ConfChangeType,
    ConfTracker,
    LeadershipTransferError,
    NoCommitInTermError,
    NotAVoterError,
    apply_change,
    encode_conf_entry,
)
from raft3d.consensus.progress import Progress
from raft3d.consensus.types import (
    TRANSFER_CONTEXT,
    ConfState,
    Entry,
    EntryType,
    Message,
    MsgType,
    NodeId,
    NotLeaderError,
    Role,
)


class Reconfiguration:
    _cfg: CoreConfig
    _id: NodeId
    _role: Role
    _term: int
    _log: RaftLog
    _leader_id: NodeId | None
    _progress: dict[NodeId, Progress]
    _append_due: dict[NodeId, bool]
    _confs: ConfTracker
    _conf: ConfState
    _voters: tuple[NodeId, ...]
    _peers: tuple[NodeId, ...]
    _peer_set: frozenset[NodeId]
    _conf_changed: bool
    _transfer: NodeId | None
    _transfer_elapsed: int
    _leaving: dict[NodeId, int]  # leader: removed peer -> index of its removal
    _election_elapsed: int
    _recovering: bool

    # --- provided by RaftCore ---------------------------------------------------------------

    def _send(self, mtype: MsgType, to: NodeId) -> None:
        raise NotImplementedError

    def _become_follower(self, term: int, leader: NodeId | None) -> None:
        raise NotImplementedError

    def _want_append_to_all(self) -> None:
        raise NotImplementedError

    def _maybe_commit(self) -> None:
        raise NotImplementedError

    def _become_candidate(self, transfer: bool = False) -> None:
        raise NotImplementedError

    # --- views ------------------------------------------------------------------------------

    @property
    def conf_state(self) -> ConfState:
        """The configuration in effect: the newest in the log, committed or not."""
        return self._conf

    @property
    def conf_index(self) -> int:
        """Log index of the entry that set ``conf_state`` (0 for the bootstrap config)."""
        return self._confs.index

    @property
    def transfer_target(self) -> NodeId | None:
        return self._transfer

    # --- inputs -----------------------------------------------------------------------------

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        """Append a configuration change; returns its (index, term). It takes effect here
        at once and on every node as soon as it is appended there."""
        if self._role is not Role.LEADER:
            raise NotLeaderError(self._leader_id)
        if self._transfer is not None:
            raise LeadershipTransferError(self._transfer)
        if not self._committed_in_term():
            raise NoCommitInTermError()
        if self._conf_change_pending():
            raise ConfChangeInProgressError(self._confs.index)
        state = apply_change(self._conf, change)
        index = self._log.last_index + 1
        entry = Entry(index, self._term, encode_conf_entry(change, state), EntryType.CONF_CHANGE)
        self._log.append(entry)
        self._confs.on_entries([entry])
        self._apply_conf()
        self._want_append_to_all()
        self._maybe_commit()  # a smaller majority may already hold more
        return index, self._term

    def transfer_leadership(self, target: NodeId) -> None:
        """Hand leadership to the voter ``target`` (a no-op if this node is the target)."""
        if self._role is not Role.LEADER:
            raise NotLeaderError(self._leader_id)
        if target == self._id:
            return
        if target not in self._voters:
            raise NotAVoterError(target)
        self._transfer = target
        self._transfer_elapsed = 0
        self._maybe_send_timeout_now(target)

    # --- decisions that fault-injection tests override --------------------------------------

    def _committed_in_term(self) -> bool:
        """Has this leader committed an entry of its own term (its no-op, at least)?"""
        log = self._log
        return log.term_at(log.committed) == self._term

    def _conf_change_pending(self) -> bool:
        return self._confs.index > self._log.committed

    def _quorum_voters(self) -> tuple[NodeId, ...]:
        """Whose acknowledgements and votes count: the voters, never the learners."""
        return self._voters

    # --- bookkeeping ------------------------------------------------------------------------

    def _apply_conf(self) -> None:
        """Put the tracker's current configuration into effect."""
        conf = self._confs.current
        if conf == self._conf:
            return
        self._conf = conf
        self._voters = conf.voters
        self._conf_changed = True
        if self._role is Role.LEADER:
            # A removed peer keeps receiving the log until it holds its removal (so that it
            # knows to stop) and the removal committed; it counts toward nothing meanwhile.
            for peer in self._progress:
                if not conf.is_member(peer):
                    self._leaving.setdefault(peer, self._confs.index)
            for peer in conf.members:
                self._leaving.pop(peer, None)
        self._set_peers()
        if self._role is not Role.LEADER:
            return
        progress = self._progress
        for gone in [p for p in progress if p not in self._peer_set]:
            del progress[gone]
            self._append_due.pop(gone, None)
        next_index = self._log.last_index + 1
        for peer in self._peers:
            if peer not in progress:
                progress[peer] = Progress(next_index, self._cfg.max_inflight_msgs)
                self._append_due[peer] = True
        if self._transfer is not None and self._transfer not in self._voters:
            self._transfer = None

    def _set_peers(self) -> None:
        members = self._conf.members
        self._peers = tuple(m for m in members if m != self._id) + tuple(self._leaving)
        self._peer_set = frozenset(self._peers)

    def _forget_departed(self) -> None:
        """Leader: stop replicating to removed peers that know of their removal."""
        committed = self._log.committed
        done = [
            peer
            for peer, index in self._leaving.items()
            if committed >= index and self._progress[peer].match >= index
        ]
        if done:
            for peer in done:
                del self._leaving[peer]
                del self._progress[peer]
                self._append_due.pop(peer, None)
            self._set_peers()

    def _maybe_promote_learners(self) -> None:
        conf = self._conf
        if not conf.learners or self._transfer is not None or self._conf_change_pending():
            return
        if not self._committed_in_term():
            return
        lag = self._cfg.promote_lag
        last = self._log.last_index
        # A learner must hold the entry that put the configuration in force (so it has
        # answered since it was added) as well as be within the lag: on a young log a match
        # of 0 is "within the lag" of a learner that never started.
        needed = self._confs.index
        for learner in conf.learners:
            pr = self._progress.get(learner)
            if learner in conf.manual or pr is None or pr.match < needed or pr.match + lag < last:
                continue
            self.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, learner))
            return

    def _tick_transfer(self) -> None:
        if self._transfer is None:
            return
        self._transfer_elapsed += 1
        if self._transfer_elapsed >= self._cfg.election_ticks:
            self._transfer = None  # the target did not take over in time: carry on

    def _maybe_send_timeout_now(self, peer: NodeId) -> None:
        """Once the transfer target holds the leader's whole log, tell it to campaign."""
        pr = self._progress.get(peer)
        if pr is None or peer != self._transfer:
            return
        if pr.match == self._log.last_index:
            self._send(MsgType.TIMEOUT_NOW, peer)
        else:
            self._append_due.setdefault(peer, False)

    def _removed_self_committed(self) -> bool:
        return self._id not in self._voters and self._confs.index <= self._log.committed

    def _hand_over(self) -> None:
        """This leader's own removal committed: pass leadership on and step down."""
        log = self._log
        best = max(self._voters, key=lambda v: self._progress[v].match, default=None)
        if best is not None and self._progress[best].match == log.last_index:
            self._send(MsgType.TIMEOUT_NOW, best)
        self._become_follower(self._term, None)

    def _stranger_may_campaign(self, msg: Message) -> bool:
        """A vote request from a node outside our configuration is answered (it may be a
        voter of a configuration we have not received yet, and need our vote) unless we
        heard from a leader within the election timeout: then it is a removed node and
        must not disrupt the cluster (Raft thesis, section 4.2.3)."""
        if msg.type is not MsgType.VOTE and msg.type is not MsgType.PRE_VOTE:
            return False
        heard = self._leader_id is not None and self._election_elapsed < self._cfg.election_ticks
        return not heard or msg.context == TRANSFER_CONTEXT

    def _on_timeout_now(self) -> None:
        if self._id in self._voters and not self._recovering:
            self._become_candidate(transfer=True)
