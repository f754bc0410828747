"""The Raft state machine of one node: pure, deterministic, single-threaded.

Inputs are ``tick``, ``step``, ``propose``, ``read_index``, ``compact`` and
``report_unreachable``; every effect on the outside world comes out of ``ready()`` as a
``Ready`` the driver carries out before calling ``advance()`` (see ``types.Ready``).

How the Ready loop keeps what the core sends consistent with what is durable (persist,
then send) is told in ``ready_loop``.

This module holds the inputs and role changes; the rest lives in parts combined here
(``parts.CoreParts`` declares what they share): ``elections``, ``follower``,
``replication`` (the leader's side), ``reconfig`` (membership, with the public
``propose_conf_change``, ``transfer_leadership`` and ``conf_state``), ``recovery`` (a node
that lost its log: ``begin_recovery``), ``compaction`` (``compact``, ``serve_from``) and
``ready_loop`` (``has_ready``, ``ready``, ``advance``).

Decisions that fault-injection tests override live in small methods: ``_grants_vote``,
``_candidate_log_ok``, ``_commit_candidate``, ``_own_match``, ``_handle_append``,
``_current_messages``, ``_heartbeat_commit``, ``_may_serve_reads``, ``_leader_read``, for
membership ``_committed_in_term``, ``_conf_change_pending``, ``_quorum_voters``, and
``begin_recovery``.
"""

from __future__ import annotations

import random
from typing import Unpack

from raft3d.consensus.compaction import Compaction
from raft3d.consensus.config import CoreConfig
from raft3d.consensus.elections import Elections
from raft3d.consensus.follower import Follower
from raft3d.consensus.log import RaftLog
from raft3d.consensus.membership import ConfTracker, LeadershipTransferError
from raft3d.consensus.parts import LEADER_MESSAGES, MessageFields
from raft3d.consensus.progress import Progress, ProgressState
from raft3d.consensus.read_only import ReadQueue
from raft3d.consensus.ready_loop import ReadyLoop
from raft3d.consensus.reconfig import Reconfiguration
from raft3d.consensus.recovery import Recovery
from raft3d.consensus.replication import Replication
from raft3d.consensus.snapshot_receiver import SnapshotReceiver
from raft3d.consensus.types import (
    TRANSFER_CONTEXT,
    ConfState,
    CoreStatus,
    Entry,
    EntryTooLargeError,
    EntryType,
    InitialState,
    Message,
    MsgType,
    NodeId,
    NotLeaderError,
    PeerStatus,
    ReadState,
    Role,
    ServedSnapshot,
    Snapshot,
)
from raft3d.consensus.validation import is_well_formed


class RaftCore(Elections, Follower, Replication, Reconfiguration, Recovery, Compaction, ReadyLoop):
    def __init__(self, config: CoreConfig, state: InitialState, rng: random.Random) -> None:
        self._cfg = config
        self._rng = rng
        self._id = config.node_id
        self._role = Role.FOLLOWER

        snap = state.snapshot
        snap_index, snap_term = (snap.meta.index, snap.meta.term) if snap else (0, 0)
        entries = [e for e in state.entries if e.index > snap_index]
        self._log = RaftLog(snap_index, snap_term, entries)
        base = snap.meta.conf_state if snap else config.bootstrap_conf()
        self._confs = ConfTracker(base, snap_index)
        self._confs.on_entries(entries)
        self._conf = ConfState(("-",))  # replaced by _apply_conf below
        self._transfer: NodeId | None = None  # leadership transfer target
        self._transfer_elapsed = 0
        self._leaving: dict[NodeId, int] = {}
        self._apply_conf()
        self._conf_changed = False  # the driver builds its first view from ``conf_state``
        hard = state.hard_state
        self._log.committed = min(max(hard.commit, snap_index), self._log.last_index)
        self._term = hard.term
        self._vote = hard.vote
        self._last_hard_state = hard  # as last handed to the driver
        # Newest snapshot of our own state, sent to laggards (from its file: serve_from).
        self._snapshot = None if snap is None else ServedSnapshot.of(snap)
        self._applied = snap_index
        self._applying = snap_index  # committed entries handed out, not yet advanced

        self._leader_id: NodeId | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_ticks
        self._votes: dict[NodeId, bool] = {}

        self._progress: dict[NodeId, Progress] = {}
        self._reads = ReadQueue()
        self._reads_awaiting_commit: list[tuple[bytes, NodeId]] = []
        self._append_due: dict[NodeId, bool] = {}  # peer -> also send if there is nothing new
        self._commit_changed = False
        self._read_heartbeat_due = False

        self._receiver = SnapshotReceiver()
        self._received_snapshot: Snapshot | None = None  # to hand out in the next Ready
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._ready_outstanding = False
        self._reset_election_timer()
        self._init_recovery()

    # --- read-only views -------------------------------------------------------------------

    @property
    def node_id(self) -> NodeId:
        return self._id

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def vote(self) -> NodeId | None:
        return self._vote

    @property
    def leader_id(self) -> NodeId | None:
        return self._leader_id

    @property
    def commit_index(self) -> int:
        return self._log.committed

    @property
    def applied_index(self) -> int:
        return self._applied

    @property
    def last_index(self) -> int:
        return self._log.last_index

    def term_at(self, index: int) -> int | None:
        """Term of the entry at ``index`` in this node's log (None if compacted or absent)."""
        return self._log.term_at(index)

    def status(self) -> CoreStatus:
        peers = []
        for peer in self._peers:
            pr = self._progress.get(peer)
            voter = peer in self._voters
            if pr is None:
                peers.append(PeerStatus(peer, 0, 0, ProgressState.PROBE.value, False, voter))
            else:
                state = pr.state.value
                peers.append(PeerStatus(peer, pr.match, pr.next, state, pr.recent_active, voter))
        return CoreStatus(
            node_id=self._id,
            role=self._role,
            term=self._term,
            leader_id=self._leader_id,
            commit_index=self._log.committed,
            applied_index=self._applied,
            last_log_index=self._log.last_index,
            snapshot_index=self.snapshot_index,
            voters=self._voters,
            peers=tuple(peers),
            learners=self._conf.learners,
            conf_index=self._confs.index,
            transferring_to=self._transfer,
            recovering=self._recovering,
        )

    # --- inputs ----------------------------------------------------------------------------

    def tick(self) -> None:
        if self._role is Role.LEADER:
            self._tick_leader()
        else:
            self._election_elapsed += 1
            self._recovery_tick()
            # Learners, removed nodes and recovering nodes never campaign.
            if (
                self._election_elapsed >= self._randomized_timeout
                and self._id in self._voters
                and not self._recovering
            ):
                self._start_election()

    def ticks_until_due(self) -> int:
        """How many ``tick()`` calls from now until one may do more than count: the n-th
        tick is the first that may campaign, heartbeat, check the quorum, give up a
        transfer or promote a learner; the n - 1 before it only advance counters. A driver
        may sleep until then and run the ticks in one go, as long as it runs those that are
        due before any other input (``step``, ``propose``, ...), which reads the counters."""
        if self._role is not Role.LEADER:
            if self._id not in self._voters:
                return self._cfg.election_ticks  # learners and removed nodes only count
            return max(1, self._randomized_timeout - self._election_elapsed)
        if self._conf.learners:
            return 1  # promotion is looked at on every tick
        cfg = self._cfg
        due = min(
            cfg.heartbeat_ticks - self._heartbeat_elapsed,
            cfg.election_ticks - self._election_elapsed,
        )
        if self._transfer is not None:
            due = min(due, cfg.election_ticks - self._transfer_elapsed)
        return max(1, due)

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` as a new entry; returns its (index, term). The APPs that carry it
        are built by the next ``ready()``, batched with other proposals."""
        if len(data) > self._cfg.max_entry_bytes:
            raise EntryTooLargeError(len(data), self._cfg.max_entry_bytes)
        if self._role is not Role.LEADER:
            raise NotLeaderError(self._leader_id)
        if self._transfer is not None:
            raise LeadershipTransferError(self._transfer)
        index = self._log.last_index + 1
        self._log.append(Entry(index, self._term, data))
        self._want_append_to_all()
        return index, self._term

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; answered as a ReadState with ``context``."""
        if self._role is Role.LEADER:
            self._leader_read(context, self._id)
        elif self._leader_id is not None:
            self._send(MsgType.READ_INDEX, self._leader_id, context=context)

    def report_unreachable(self, peer: NodeId) -> None:
        pr = self._progress.get(peer)
        if pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()
        if self._role is Role.FOLLOWER and peer == self._leader_id:
            # Our link to the leader broke, most likely because its process died. Campaign
            # after a short random delay instead of a whole election timeout. Forgetting the
            # leader also ends our lease, so we grant pre-votes to a peer that saw the same;
            # a leader that is in fact alive keeps its place (its heartbeats reset the timer,
            # and pre-vote fails while the other followers still hear from it).
            self._leader_id = None
            cfg = self._cfg
            delay = 1 + self._rng.randrange(cfg.lost_leader_ticks or 3 * cfg.heartbeat_ticks)
            self._election_elapsed = max(self._election_elapsed, self._randomized_timeout - delay)

    def step(self, msg: Message) -> None:
        if msg.to != self._id or msg.frm == self._id or not is_well_formed(msg):
            return
        mtype = msg.type
        if (
            msg.frm not in self._peer_set
            and mtype not in LEADER_MESSAGES
            and msg.frm != self._leader_id
            and not self._stranger_may_campaign(msg)
        ):
            # Not a member of our configuration (a removed node, say): it gets no say. A
            # leader is heard even if we do not know it (that is how a joining node learns
            # the log) or it has removed itself (it hands over with TIMEOUT_NOW).
            return
        if msg.term > self._term:
            if (
                (mtype is MsgType.VOTE or mtype is MsgType.PRE_VOTE)
                and self._in_leader_lease()
                and msg.context != TRANSFER_CONTEXT
            ):
                return  # a live leader exists: don't let a partitioned node disrupt it
            if mtype is MsgType.PRE_VOTE or (mtype is MsgType.PRE_VOTE_RESP and not msg.reject):
                pass  # pre-votes carry the term the candidate would use; ours is unchanged
            elif mtype in LEADER_MESSAGES:
                self._become_follower(msg.term, msg.frm)
            else:
                self._become_follower(msg.term, None)
        elif msg.term < self._term:
            self._answer_stale_sender(msg)
            return

        if mtype is MsgType.VOTE or mtype is MsgType.PRE_VOTE:
            self._handle_vote_request(msg)
        elif self._role is Role.LEADER:
            self._step_leader(msg)
        elif self._role is Role.FOLLOWER:
            self._step_follower(msg)
        else:
            self._step_candidate(msg)

    # --- role changes ---------------------------------------------------------------------
    def _become_follower(self, term: int, leader: NodeId | None) -> None:
        if term != self._term:
            self._term = term
            self._vote = None
        self._role = Role.FOLLOWER
        self._leader_id = leader
        self._votes = {}
        self._reset_election_timer()
        self._clear_leader_state()

    def _become_leader(self) -> None:
        self._role = Role.LEADER
        self._leader_id = self._id
        self._votes = {}
        self._reset_election_timer()
        self._clear_leader_state()
        next_index = self._log.last_index + 1
        limit = self._cfg.max_inflight_msgs
        self._progress = {peer: Progress(next_index, limit) for peer in self._peers}
        # The no-op lets the new leader commit (and so learn the commit point of) every
        # entry from earlier terms without ever counting replicas of an old-term entry.
        self._log.append(Entry(next_index, self._term, b"", EntryType.NOOP))
        self._want_append_to_all()

    def _clear_leader_state(self) -> None:
        self._progress = {}
        self._reads.clear()
        self._reads_awaiting_commit = []
        self._append_due = {}
        self._commit_changed = False
        self._read_heartbeat_due = False
        self._transfer = None
        if self._leaving:
            self._leaving = {}
            self._set_peers()

    # --- plumbing --------------------------------------------------------------------------

    def _send(
        self,
        mtype: MsgType,
        to: NodeId,
        *,
        term: int | None = None,
        **fields: Unpack[MessageFields],
    ) -> None:
        """Queue a message for the next Ready, stamped with this node as sender and the
        current term. Only pre-votes say otherwise: they carry the term the candidate would
        campaign in, and a granted pre-vote answers with the term it was asked for."""
        stamped = self._term if term is None else term
        self._msgs.append(Message(mtype, to, self._id, stamped, **fields))
