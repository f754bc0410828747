"""The Raft state machine of one node: pure, deterministic, single-threaded.

Inputs are ``tick``, ``step``, ``propose``, ``read_index``, ``compact`` and
``report_unreachable``; every effect on the outside world comes out of ``ready()`` as a
``Ready`` the driver carries out before calling ``advance()`` (see ``types.Ready``).

Durability rules this class relies on, all guaranteed by the Ready contract (persist, then
send):

- every message leaves in the Ready that was built after the state it depends on, so a vote
  grant goes out with (or after) the hard state that records it and a follower's APP_RESP
  with (or after) the entries it acknowledges;
- messages stamped with a term older than the current one are dropped when the Ready is
  built: events overtook them (a node whose log a newer leader rewrote does not send the old
  leader an acknowledgement of entries it no longer has);
- the leader counts its own copy of an entry toward the commit quorum only once the Ready
  that carried it has been advanced (``_own_match``), so the leader may even send its APPs
  before its own write finished.

Only one Ready may be outstanding: ``has_ready()`` is False between ``ready()`` and
``advance()``, while ``tick``/``step``/``propose`` may still be called in between.

Decisions that fault-injection tests override live in small methods: ``_grants_vote``,
``_candidate_log_ok``, ``_commit_candidate``, ``_own_match``, ``_handle_append``,
``_current_messages``, ``_heartbeat_commit``, ``_may_serve_reads``, ``_leader_read``, and
for membership (``reconfig.Reconfiguration``, which also holds the public
``propose_conf_change``, ``transfer_leadership`` and ``conf_state``): ``_committed_in_term``,
``_conf_change_pending``, ``_quorum_voters``.
"""

from __future__ import annotations

import random
from typing import TypedDict, Unpack

from raft3d.consensus import quorum
from raft3d.consensus.config import CoreConfig
from raft3d.consensus.log import RaftLog
from raft3d.consensus.membership import ConfTracker, LeadershipTransferError
from raft3d.consensus.progress import Progress, ProgressState
from raft3d.consensus.quorum import VoteResult
from raft3d.consensus.read_only import PendingRead, ReadQueue
from raft3d.consensus.reconfig import Reconfiguration
from raft3d.consensus.recovery import RECOVERY_CONTEXT_PREFIX, Recovery
from raft3d.consensus.snapshot_receiver import SnapshotReceiver
from raft3d.consensus.types import (
    TRANSFER_CONTEXT,
    ConfState,
    CoreStatus,
    Entry,
    EntryTooLargeError,
    EntryType,
    HardState,
    InitialState,
    Message,
    MsgType,
    NodeId,
    NotLeaderError,
    PeerStatus,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)
from raft3d.consensus.validation import is_well_formed


class _Fields(TypedDict, total=False):
    """The fields of a ``Message`` beyond type, recipient, sender and term."""

    log_term: int
    index: int
    entries: list[Entry]
    commit: int
    reject: bool
    reject_hint: int
    context: bytes
    snapshot_meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


# Messages only a leader sends; receiving one at a higher term names the new leader.
_LEADER_MESSAGES = frozenset({MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP})


class RaftCore(Reconfiguration, Recovery):
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
        self._snapshot = snap  # newest snapshot of our own state, sent to laggards
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

    @property
    def snapshot_index(self) -> int:
        """Index of the newest snapshot; the log may still hold trailing entries below it."""
        own = self._snapshot.meta.index if self._snapshot is not None else 0
        return max(own, self._log.snapshot_index)

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
            delay = 1 + self._rng.randrange(3 * self._cfg.heartbeat_ticks)
            self._election_elapsed = max(self._election_elapsed, self._randomized_timeout - delay)

    def compact(self, index: int, data: bytes) -> Snapshot:
        """Record the application's snapshot ``data`` of the state at applied ``index`` and
        drop the log up to it. The snapshot is kept to bring laggards up to date."""
        if index > self._applied:
            raise ValueError(f"cannot compact at {index}: only {self._applied} is applied")
        if index <= self.snapshot_index:
            if self._snapshot is not None and index == self._snapshot.meta.index:
                return self._snapshot
            raise ValueError(f"cannot compact at {index}: already compacted past it")
        conf = self._confs.state_at(index)
        term = self._log.term_at(index)
        if term is None:
            raise ValueError(f"cannot compact at {index}: not in the log")
        keep_from = index - self._cfg.trailing_entries
        if keep_from > self._log.snapshot_index:
            self._log.compact(keep_from)
        self._confs.compact(index)
        meta = SnapshotMeta.of(index, term, conf)
        self._snapshot = Snapshot(meta, data)
        return self._snapshot

    def step(self, msg: Message) -> None:
        if msg.to != self._id or msg.frm == self._id or not is_well_formed(msg):
            return
        mtype = msg.type
        if (
            msg.frm not in self._peer_set
            and mtype not in _LEADER_MESSAGES
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
            elif mtype in _LEADER_MESSAGES:
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

    # --- Ready loop ------------------------------------------------------------------------

    def has_ready(self) -> bool:
        if self._ready_outstanding:
            return False
        if (
            self._msgs
            or self._read_states
            or self._conf_changed
            or self._append_due
            or self._commit_changed
            or self._read_heartbeat_due
            or self._received_snapshot is not None
            or self._recovered_pending
        ):
            return True
        log = self._log
        if log.has_unstable() or log.committed > self._applying:
            return True
        hard = self._last_hard_state
        return hard.term != self._term or hard.vote != self._vote or hard.commit != log.committed

    def ready(self) -> Ready:
        if self._ready_outstanding:
            raise RuntimeError("advance() the previous Ready before asking for another")
        if self._role is Role.LEADER:
            self._flush_leader_messages()
            self._forget_departed()
            if self._removed_self_committed():
                self._hand_over()
        log = self._log
        rd = Ready()
        if self._conf_changed:
            self._conf_changed = False
            rd.conf_state = self._conf
        if self._recovered_pending:
            self._recovered_pending = False
            rd.recovered = True
        unstable = log.unstable_entries()
        if unstable:
            rd.entries = unstable
            log.mark_emitted(unstable[-1].index)
        hard = self._last_hard_state
        if hard.term != self._term or hard.vote != self._vote or hard.commit != log.committed:
            hard = HardState(self._term, self._vote, log.committed)
            rd.hard_state = hard
            self._last_hard_state = hard
        if self._received_snapshot is not None:
            rd.snapshot = self._received_snapshot
            self._received_snapshot = None
        if log.committed > self._applying:
            committed = log.entries_between(
                self._applying + 1, log.committed, self._cfg.max_committed_bytes_per_ready
            )
            rd.committed_entries = committed
            self._applying = committed[-1].index
        if self._msgs:
            rd.messages = self._current_messages(self._msgs)
            self._msgs = []
        if self._read_states:
            rd.read_states = self._read_states
            self._read_states = []
        self._ready_outstanding = True
        return rd

    def advance(self, ready: Ready) -> None:
        """The driver persisted ``ready``, sent its messages and applied its entries."""
        if not self._ready_outstanding:
            raise RuntimeError("advance() without an outstanding Ready")
        self._ready_outstanding = False
        if ready.snapshot is not None:
            self._applied = max(self._applied, ready.snapshot.meta.index)
        if ready.committed_entries:
            self._applied = max(self._applied, ready.committed_entries[-1].index)
        if ready.entries:
            last = ready.entries[-1]
            self._log.stable_to(last.index, last.term)
            if self._role is Role.LEADER:
                self._maybe_commit()
        self._maybe_end_recovery()

    def _current_messages(self, msgs: list[Message]) -> list[Message]:
        """Drop messages stamped with a term older than ours: events overtook them (e.g. an
        acknowledgement of entries that a newer leader has since replaced). Dropping a
        message is always safe in Raft."""
        term = self._term
        return [m for m in msgs if m.term >= term]

    # --- elections -------------------------------------------------------------------------

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
        if mtype in _LEADER_MESSAGES:
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
        if mtype in _LEADER_MESSAGES:
            # Always: with leader stickiness, the higher-term node may never get the votes
            # that would otherwise depose the stale leader.
            self._send(MsgType.APP_RESP, msg.frm)
        elif mtype is MsgType.PRE_VOTE:
            self._send(MsgType.PRE_VOTE_RESP, msg.frm, reject=True)

    # --- follower --------------------------------------------------------------------------

    def _step_follower(self, msg: Message) -> None:
        mtype = msg.type
        if mtype is MsgType.APP:
            self._leader_id = msg.frm
            self._election_elapsed = 0
            self._handle_append(msg)
            self._recovery_heard_leader()
        elif mtype is MsgType.HEARTBEAT:
            self._leader_id = msg.frm
            self._election_elapsed = 0
            self._handle_heartbeat(msg)
            self._recovery_heard_leader()
        elif mtype is MsgType.SNAP:
            self._leader_id = msg.frm
            self._election_elapsed = 0
            self._handle_snapshot_chunk(msg)
            self._recovery_heard_leader()
        elif mtype is MsgType.READ_INDEX_RESP:
            if not self._recovery_answer(msg):
                self._read_states.append(ReadState(msg.index, msg.context))
        elif mtype is MsgType.TIMEOUT_NOW:
            self._on_timeout_now()

    def _handle_append(self, msg: Message) -> None:
        log = self._log
        if msg.index < log.committed:
            # Everything up to our commit index already matches the leader.
            self._send(MsgType.APP_RESP, msg.frm, index=log.committed)
            return
        if log.term_at(msg.index) == msg.log_term:
            conflict = log.find_conflict(msg.entries)
            last_new = log.append_after(msg.index, msg.entries)
            if last_new is None:
                return  # would overwrite a committed entry: not from a correct leader
            if conflict:
                confs = self._confs
                # A node uses the newest configuration in its log, committed or not, and
                # falls back to an older one when a newer one is truncated away.
                changed = confs.truncate_from(conflict)
                if confs.on_entries(msg.entries[conflict - msg.index - 1 :]) or changed:
                    self._apply_conf()
            log.commit_to(min(msg.commit, last_new))
            self._send(
                MsgType.APP_RESP, msg.frm, index=self._recovery_ack_cap(last_new, msg.commit)
            )
            self._maybe_end_recovery()
            return
        hint_index, hint_term = log.find_conflict_by_term(msg.index, msg.log_term)
        self._send(
            MsgType.APP_RESP,
            msg.frm,
            index=msg.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, msg: Message) -> None:
        # The leader caps the commit index at what we acknowledged in this term.
        self._log.commit_to(min(msg.commit, self._log.last_index))
        self._maybe_end_recovery()
        # Our last index tells the leader if we hold less than we once acknowledged.
        context = self._recovery_echo(msg.context)
        self._send(MsgType.HEARTBEAT_RESP, msg.frm, index=self._log.last_index, context=context)

    def _handle_snapshot_chunk(self, msg: Message) -> None:
        meta = msg.snapshot_meta
        assert meta is not None
        log = self._log
        if meta.index <= log.committed:
            self._receiver.reset()
            self._send_snapshot_done(msg.frm, log.committed)
            return
        outcome = self._receiver.offer(msg)
        snapshot = outcome.snapshot
        if snapshot is None:
            self._send(
                MsgType.SNAP_RESP,
                msg.frm,
                index=meta.index,
                offset=outcome.received,
                reject=outcome.rejected,
            )
            return
        if log.term_at(meta.index) == meta.term:
            # Our log already holds the snapshot's last entry, hence everything before it.
            log.commit_to(meta.index)
        else:
            log.restore(meta.index, meta.term)
            self._confs.restore(meta.conf_state, meta.index)
            self._apply_conf()
            self._snapshot = snapshot
            self._received_snapshot = snapshot
            self._applying = max(self._applying, meta.index)
        self._send_snapshot_done(msg.frm, meta.index)

    def _send_snapshot_done(self, to: NodeId, index: int) -> None:
        self._send(MsgType.SNAP_RESP, to, index=index, done=True)

    # --- leader ----------------------------------------------------------------------------

    def _tick_leader(self) -> None:
        self._tick_transfer()
        self._maybe_promote_learners()
        self._election_elapsed += 1
        if self._election_elapsed >= self._cfg.election_ticks:
            self._election_elapsed = 0
            if self._cfg.check_quorum:
                active = {p for p, pr in self._progress.items() if pr.recent_active}
                active.add(self._id)
                if not quorum.has_quorum(self._quorum_voters(), active):
                    self._become_follower(self._term, None)
                    return
                for pr in self._progress.values():
                    pr.recent_active = False
        self._heartbeat_elapsed += 1
        if self._heartbeat_elapsed >= self._cfg.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()
            for peer, pr in self._progress.items():
                if pr.state is ProgressState.SNAPSHOT:
                    pr.chunk_heartbeats += 1
                    if pr.chunk_heartbeats >= 2:
                        self._send_snapshot_chunk(peer, pr)  # presumed lost: resend

    def _broadcast_heartbeat(self) -> None:
        context = self._reads.last_context()
        for peer, pr in self._progress.items():
            self._send(MsgType.HEARTBEAT, peer, commit=self._heartbeat_commit(pr), context=context)

    def _heartbeat_commit(self, pr: Progress) -> int:
        """A heartbeat carries no entries, so it may only commit what the follower is known
        to hold: entries it acknowledged in this term."""
        return min(pr.match, self._log.committed)

    def _step_leader(self, msg: Message) -> None:
        mtype = msg.type
        pr = self._progress.get(msg.frm)
        if pr is None:
            return
        if mtype is MsgType.APP_RESP:
            pr.recent_active = True
            self._handle_append_response(msg, pr)
        elif mtype is MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            self._handle_heartbeat_response(msg, pr)
        elif mtype is MsgType.SNAP_RESP:
            pr.recent_active = True
            self._handle_snapshot_response(msg, pr)
        elif mtype is MsgType.READ_INDEX:
            pr.recent_active = True
            if msg.context.startswith(RECOVERY_CONTEXT_PREFIX):
                self._recovery_request(msg.frm, pr)
            self._leader_read(msg.context, msg.frm)

    def _handle_append_response(self, msg: Message, pr: Progress) -> None:
        peer = msg.frm
        if msg.reject:
            hint = msg.reject_hint
            if msg.log_term > 0:
                # Skip every entry of ours in a term the follower cannot match.
                hint, _ = self._log.find_conflict_by_term(hint, msg.log_term)
            if pr.maybe_decr_to(msg.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._append_due[peer] = True
            return
        if msg.index > self._log.last_index:
            return  # acknowledges entries we never had
        was_paused = pr.is_paused()
        if pr.maybe_update(msg.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT:
                assert pr.snapshot is not None
                if pr.match >= pr.snapshot.meta.index:
                    pr.become_probe()
            else:
                pr.inflights.free_to(msg.index)
            self._maybe_commit()
            self._append_due.setdefault(peer, False)
            self._maybe_send_timeout_now(peer)
        elif was_paused and not pr.is_paused():
            self._append_due.setdefault(peer, False)

    def _handle_heartbeat_response(self, msg: Message, pr: Progress) -> None:
        if msg.index < pr.match:
            # The follower holds fewer entries than it acknowledged: its data directory was
            # lost or wiped. Start over from what it has (by snapshot if that is compacted).
            # A reordered, older answer can land here too; that costs one probe, nothing more.
            pr.match = msg.index
            pr.become_probe()
            self._append_due[msg.frm] = True
        if pr.state is ProgressState.PROBE:
            pr.probe_sent = False
        elif pr.state is ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first()
        if pr.match < self._log.last_index:
            # An empty APP doubles as a probe if earlier APPs were lost.
            self._append_due[msg.frm] = True
        if msg.context:
            for read in self._reads.ack(msg.context, msg.frm, self._quorum_voters()):
                self._release_read(read.context, read.index, read.requester)

    def _handle_snapshot_response(self, msg: Message, pr: Progress) -> None:
        if msg.done:
            if msg.index > self._log.last_index:
                return  # claims entries we never had
            pr.maybe_update(msg.index)
            if pr.state is ProgressState.SNAPSHOT:
                pr.become_probe()
            self._append_due[msg.frm] = True
            self._maybe_commit()
            self._maybe_send_timeout_now(msg.frm)
            return
        snap = pr.snapshot
        if pr.state is not ProgressState.SNAPSHOT or snap is None or msg.index != snap.meta.index:
            return
        if not msg.reject and msg.offset <= pr.snap_offset:
            return  # a duplicate answer
        pr.snap_offset = min(msg.offset, len(snap.data))
        self._send_snapshot_chunk(msg.frm, pr)

    def _own_match(self) -> int:
        """How far the leader's own log counts toward a quorum: only what is durable."""
        return self._log.stable_index

    def _commit_candidate(self) -> int:
        """The highest index a quorum has durably stored, if it is from the current term;
        otherwise the current commit index. Entries of earlier terms are never committed by
        counting replicas: they commit when a current-term entry after them does."""
        index = quorum.committed_index(self._quorum_voters(), self._match_indexes())
        if index > self._log.committed and self._log.term_at(index) == self._term:
            return index
        return self._log.committed

    def _match_indexes(self) -> dict[NodeId, int]:
        """How far each voter's log is known to match ours, the leader's own included."""
        match = {peer: pr.match for peer, pr in self._progress.items()}
        match[self._id] = self._own_match()
        return match

    def _maybe_commit(self) -> None:
        log = self._log
        if not log.commit_to(self._commit_candidate()):
            return
        self._commit_changed = True
        if self._reads_awaiting_commit and self._may_serve_reads():
            waiting = self._reads_awaiting_commit
            self._reads_awaiting_commit = []
            for context, requester in waiting:
                self._leader_read(context, requester)

    def _want_append_to_all(self) -> None:
        due = self._append_due
        for peer in self._peers:
            due.setdefault(peer, False)

    def _flush_leader_messages(self) -> None:
        """Build the APPs (and read heartbeats) that were deferred so that everything
        proposed since the last Ready goes out batched."""
        if self._read_heartbeat_due:
            self._read_heartbeat_due = False
            self._broadcast_heartbeat()
        due = self._append_due
        if self._commit_changed:
            self._commit_changed = False
            for peer in self._peers:
                due[peer] = True  # followers must learn the new commit index
        if not due:
            return
        self._append_due = {}
        last = self._log.last_index
        for peer, send_if_empty in due.items():
            pr = self._progress[peer]
            sent = self._send_append(peer, pr, send_if_empty)
            while sent and pr.state is ProgressState.REPLICATE and pr.next <= last:
                sent = self._send_append(peer, pr, False)

    def _send_append(self, peer: NodeId, pr: Progress, send_if_empty: bool) -> bool:
        if pr.is_paused():
            return False
        log = self._log
        prev_index = pr.next - 1
        prev_term = log.term_at(prev_index)
        if prev_term is None:
            return self._start_snapshot(peer, pr)
        if pr.next <= log.last_index:
            entries = log.entries_between(pr.next, log.last_index, self._cfg.max_msg_bytes)
        elif send_if_empty:
            entries = []
        else:
            return False
        self._send(
            MsgType.APP,
            peer,
            log_term=prev_term,
            index=prev_index,
            entries=entries,
            commit=log.committed,
        )
        if pr.state is ProgressState.REPLICATE:
            if entries:
                last_sent = entries[-1].index
                pr.next = last_sent + 1
                pr.inflights.add(last_sent)
        else:
            pr.probe_sent = True
        return True

    def _start_snapshot(self, peer: NodeId, pr: Progress) -> bool:
        snap = self._snapshot
        if snap is None:
            return False
        pr.become_snapshot(snap)
        self._send_snapshot_chunk(peer, pr)
        return True

    def _send_snapshot_chunk(self, peer: NodeId, pr: Progress) -> None:
        snap = pr.snapshot
        assert snap is not None
        offset = pr.snap_offset
        pr.chunk_heartbeats = 0
        chunk = snap.data[offset : offset + self._cfg.snapshot_chunk_bytes]
        self._send(
            MsgType.SNAP,
            peer,
            snapshot_meta=snap.meta,
            offset=offset,
            data=chunk,
            done=offset + len(chunk) >= len(snap.data),
        )

    # --- ReadIndex -------------------------------------------------------------------------

    def _may_serve_reads(self) -> bool:
        """Until an entry of its own term commits, a new leader does not know the cluster's
        commit point (earlier leaders may have committed more than it has marked)."""
        log = self._log
        return log.term_at(log.committed) == self._term

    def _leader_read(self, context: bytes, requester: NodeId) -> None:
        log = self._log
        if not self._may_serve_reads():
            self._reads_awaiting_commit.append((context, requester))
            return
        if quorum.has_quorum(self._quorum_voters(), (self._id,)):
            self._release_read(context, log.committed, requester)
            return
        read = PendingRead(context, log.committed, requester, {self._id})
        if self._reads.add(read):
            self._read_heartbeat_due = True

    def _release_read(self, context: bytes, index: int, requester: NodeId) -> None:
        if requester == self._id:
            self._read_states.append(ReadState(index, context))
        else:
            self._send(MsgType.READ_INDEX_RESP, requester, index=index, context=context)

    # --- plumbing --------------------------------------------------------------------------

    def _send(
        self, mtype: MsgType, to: NodeId, *, term: int | None = None, **fields: Unpack[_Fields]
    ) -> None:
        """Queue a message for the next Ready, stamped with this node as sender and the
        current term. Only pre-votes say otherwise: they carry the term the candidate would
        campaign in, and a granted pre-vote answers with the term it was asked for."""
        stamped = self._term if term is None else term
        self._msgs.append(Message(mtype, to, self._id, stamped, **fields))
