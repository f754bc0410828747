"""Recovery mode: how a node that lost its log (and with it its term, its vote and the
entries it acknowledged) comes back without endangering what the cluster committed.

A voter that forgot its log must not vote: its grant could elect a candidate lacking entries
that were committed with its help, and it may already have voted in the current term. Nor
may it help commit anything while it does not know the cluster's current term: a stale
leader it happens to reach could otherwise commit entries of an old term over newer ones.
So, while recovering (``begin_recovery`` or ``CoreConfig.recovering``), the node:

- grants no vote and no pre-vote (it answers every request with a rejection), never
  campaigns (election timeouts and TIMEOUT_NOW are ignored) and so is never the target of a
  transfer that completes;
- accepts a leader's appends and snapshots, but acknowledges entries only up to the
  commit index that came with them, so its acknowledgements never make a leader commit
  anything (its copies count again once it is recovered);
- does not echo read contexts in its heartbeat answers, so it confirms nobody's ReadIndex;
- asks the leader it follows for a ReadIndex (``RECOVERY_CONTEXT_PREFIX``), asked again
  after an election timeout without an answer. The leader answers once a quorum of the other
  voters confirmed it still leads, after it committed an entry of its own term: the answer is
  then at least the cluster's commit point when the request arrived, every entry committed
  before the node lost its log included. Receiving that request, the leader also stops
  counting the node's old acknowledgements of uncommitted entries (they predate the loss).

It leaves recovery by itself once its commit index reached that answer, in the same term,
with every entry up to it (and any snapshot) durable: ``CoreStatus.recovering`` turns False
and the next ``Ready`` has ``recovered`` set, once. If it holds no vote for the current term
it records one for the leader that answered, which already won that term: the vote it may
have cast in that term before the loss is unknown, and must not be repeated for someone else.

What it cannot know is a vote it cast before the loss in a term *above* the one it recovers
in (it was campaigning, or voting for a candidate that lost, in a minority partition); a node
wiped in that state could vote again in that term. Operators should wipe or replace nodes
that are not partitioned away.
"""

from __future__ import annotations

from raft3d.consensus.config import CoreConfig
from raft3d.consensus.log import RaftLog
from raft3d.consensus.progress import Progress
from raft3d.consensus.types import Message, MsgType, NodeId, Role, Snapshot

# Context prefix of a recovering node's ReadIndex requests (term and a counter follow).
RECOVERY_CONTEXT_PREFIX = b"\x00raft3d-recovery:"


class Recovery:
    _cfg: CoreConfig
    _id: NodeId
    _role: Role
    _term: int
    _vote: NodeId | None
    _log: RaftLog
    _leader_id: NodeId | None
    _progress: dict[NodeId, Progress]
    _append_due: dict[NodeId, bool]
    _received_snapshot: Snapshot | None
    _ready_outstanding: bool

    _recovering: bool
    _recovered_pending: bool  # report ``Ready.recovered`` in the next Ready
    _recovery_asks: int  # ReadIndex requests sent so far (makes each context unique)
    _recovery_context: bytes  # of the request awaiting an answer
    _recovery_ask_term: int
    _recovery_ask_elapsed: int
    _recovery_target: tuple[int, int, NodeId] | None  # (term, read index, leader)

    # --- provided by RaftCore ---------------------------------------------------------------

    def _send(self, mtype: MsgType, to: NodeId, *, context: bytes = b"") -> None:
        raise NotImplementedError

    def _become_follower(self, term: int, leader: NodeId | None) -> None:
        raise NotImplementedError

    # --- public -----------------------------------------------------------------------------

    @property
    def recovering(self) -> bool:
        return self._recovering

    def begin_recovery(self) -> None:
        """This node lost its log: stop voting and campaigning until a leader has brought it
        up to date (see the module docstring)."""
        self._recovering = True
        self._recovered_pending = False
        self._recovery_target = None
        self._recovery_ask_term = -1
        if self._role is not Role.FOLLOWER:
            self._become_follower(self._term, None)

    # --- node side --------------------------------------------------------------------------

    def _init_recovery(self) -> None:
        self._recovering = False
        self._recovered_pending = False
        self._recovery_asks = 0
        self._recovery_context = b""
        self._recovery_ask_term = -1
        self._recovery_ask_elapsed = 0
        self._recovery_target = None
        if self._cfg.recovering:
            self.begin_recovery()

    def _recovery_tick(self) -> None:
        if self._recovering:
            self._recovery_ask_elapsed += 1

    def _recovery_heard_leader(self) -> None:
        """A message from the leader of the current term arrived: ask it for the read point
        that ends recovery, unless a request in this term is recent enough."""
        if not self._recovering or self._leader_id is None:
            return
        if (
            self._recovery_ask_term == self._term
            and self._recovery_ask_elapsed < self._cfg.election_ticks
        ):
            return
        self._recovery_asks += 1
        self._recovery_context = RECOVERY_CONTEXT_PREFIX + b"%d.%d" % (
            self._term,
            self._recovery_asks,
        )
        self._recovery_ask_term = self._term
        self._recovery_ask_elapsed = 0
        self._send(MsgType.READ_INDEX, self._leader_id, context=self._recovery_context)

    def _recovery_answer(self, msg: Message) -> bool:
        """Handle a READ_INDEX_RESP if it answers recovery; True if it was one."""
        if not msg.context.startswith(RECOVERY_CONTEXT_PREFIX):
            return False
        if self._recovering and msg.context == self._recovery_context and msg.term == self._term:
            self._recovery_target = (msg.term, msg.index, msg.frm)
            self._maybe_end_recovery()
        return True

    def _recovery_ack_cap(self, index: int, leader_commit: int) -> int:
        """What to acknowledge of entries up to ``index`` that came with ``leader_commit``."""
        if self._recovering:
            return min(index, max(leader_commit, self._log.committed))
        return index

    def _recovery_echo(self, context: bytes) -> bytes:
        """The read context a heartbeat answer carries: none while recovering."""
        return b"" if self._recovering else context

    def _maybe_end_recovery(self) -> None:
        target = self._recovery_target
        if not self._recovering or target is None:
            return
        term, index, leader = target
        log = self._log
        if term != self._term:
            self._recovery_target = None
            return
        if self._ready_outstanding or self._received_snapshot is not None:
            return  # what is handed out may not be durable yet: decide after advance()
        if log.committed < index or log.stable_index < index:
            return
        self._recovering = False
        self._recovered_pending = True
        self._recovery_target = None
        if self._vote is None:
            self._vote = leader

    # --- leader side ------------------------------------------------------------------------

    def _recovery_request(self, peer: NodeId, pr: Progress) -> None:
        """A recovering peer asked for its read point: whatever it acknowledged beyond our
        commit index predates the loss of its log, so it no longer counts."""
        committed = self._log.committed
        if pr.match > committed:
            pr.match = committed
            pr.become_probe()
            self._append_due[peer] = True
