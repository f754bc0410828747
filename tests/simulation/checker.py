"""The omniscient safety checker of the simulation.

It sees every node's volatile core, its durable storage and its state machine, and checks:

- Election Safety: at most one leader per term (every leader ever observed is remembered),
  and, at the message level, no node grants its vote to two candidates in one term.
- Log Matching: entries are registered by (index, term) as they are handed out for
  persisting, together with their payload and the term of the entry before them. Two
  entries with the same (index, term) anywhere, ever, must agree on both; by induction over
  the index that is exactly "same index and term => identical prefix". The compacted prefix
  is covered by the State Machine Safety check below (snapshots carry every entry's term).
- Leader Completeness: a ledger records every entry known to be committed (an index at or
  below some node's commit index) with the term in which that was first observed. A leader
  of a later term must hold every such entry in its log (or its snapshot covers the index),
  checked when it takes office and whenever the ledger grows. Prospectively, too: no node
  holding the newest committed entry would vote (on log grounds) for a node lacking it, so an
  unsafe commit is reported before some later election exploits it.
- State Machine Safety: one global sequence of applied (term, payload); every apply on every
  node, and every state restored from a snapshot, must agree with it.
- Commit index monotonic: per node and incarnation the commit index never decreases. A
  restart may reset it to the durable commit index, but never below what the node had applied
  before the crash: a Ready carries the commit index that covers its committed entries and is
  persisted before they are applied, so the durable commit index always covers them.
- Committed means durable: whenever a node's commit index moves, and whenever an entry is
  applied, that entry must be durable (in the log or a snapshot in storage) on a majority; and
  after every step the newest known-committed entry must still be durable on a majority (a
  committed entry may never be lost, e.g. by a follower truncating entries it acknowledged).
  A follower also never loses an entry it acknowledged to the leader of its current term.

Membership (the configuration is in the log; see ``raft3d.consensus.membership``):

- Majorities are counted among the voters of the configuration in use: "durable on a
  majority" means a majority of the voters of the leader that committed the entry (learners
  never count), and every leader must have been sent vote grants by a majority of the voters
  of the configuration it held when it won (its own vote included if it is one of them).
- A node that is not a voter of its own configuration (a learner, a removed node, a node
  still joining) never campaigns.
- At most one configuration change is uncommitted in any node's log, and a leader appends a
  change only after an entry of its own term committed (Raft thesis, section 4.1 and its
  erratum): each change entry must follow a committed entry of its term.

Timers: a tick that ``RaftCore.ticks_until_due`` said comes before the due one changes
nothing but counters (the node driver sleeps through such ticks and runs them in one go).

Lost data directories (``Cluster.wipe``): a wiped node no longer holds what it stored, yet
while it is recovering it cannot vote for a candidate lacking those entries, so it still
stands for them: "durable on a majority" counts it as holding what its lost storage held
(a *ghost* copy) until it reports itself recovered. A ghost that grants a vote or campaigns
is no longer trusted: its ghost copy is dropped at once, so a committed entry that then lies
on a minority of the voters is reported as lost. The same ghost stands for the entries it
acknowledged to a leader before the loss, until the leader has forgotten them.

ReadIndex linearizability is checked by the workload (``workload.py``). The checks that look
at the whole cluster after every step live in ``step_checks``.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from raft3d.consensus import (
    CoreStatus,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    NodeId,
    RaftCore,
    Ready,
    Role,
    Snapshot,
)

from .sim_node import SimNode
from .step_checks import StepChecks
from .storage import MemoryStorage


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold."""


@dataclass
class _NodeWatch:
    commit: int = 0  # last commit index seen in the current incarnation
    applied_before_crash: int = 0  # highest index applied in any earlier incarnation


class SafetyChecker(StepChecks):
    def __init__(self, nodes: dict[NodeId, SimNode]) -> None:
        self._nodes = nodes
        self._all = list(nodes.values())
        self.leaders: dict[int, NodeId] = {}
        self._entries: dict[tuple[int, int], tuple[bytes, EntryType, int]] = {}
        self.applied_terms: list[int] = []
        self.applied_payloads: list[bytes] = []
        self.ledger_terms: list[int] = []  # term of committed entry i at position i - 1
        self._ledger_commit_terms: list[int] = []  # term in which it was first seen committed
        self._ledger_voters: list[tuple[NodeId, ...]] = []  # voters of the committing leader
        self._watch = {node_id: _NodeWatch() for node_id in nodes}
        self._votes: dict[tuple[NodeId, int], NodeId] = {}  # (voter, term) -> candidate
        self._ghosts: dict[NodeId, list[MemoryStorage]] = {}  # wiped, not yet recovered

    def add_node(self, node: SimNode) -> None:
        self._all.append(node)
        self._watch[node.node_id] = _NodeWatch()

    # --- helpers ---------------------------------------------------------------------------

    def _fail(self, what: str) -> None:
        raise InvariantViolation(what)

    def durable_copies(self, index: int, term: int, voters: tuple[NodeId, ...]) -> int:
        """Voters among ``voters`` whose storage holds entry (index, term), or whose lost
        storage did while they are recovering (ghost copies)."""
        nodes = self._nodes
        return sum(
            1
            for v in voters
            if nodes[v].storage.term_at(index) == term or self._ghost_holds(v, index, term)
        )

    def _ghost_holds(self, node: NodeId, index: int, term: int) -> bool:
        return any(lost.term_at(index) == term for lost in self._ghosts.get(node, ()))

    def _untrust_ghost(self, node: NodeId) -> None:
        self._ghosts.pop(node, None)

    def _short_of_majority(self, index: int, term: int, voters: tuple[NodeId, ...]) -> str:
        """'' if (index, term) is durable on a majority of ``voters``, else what is wrong."""
        copies = self.durable_copies(index, term, voters)
        if copies >= len(voters) // 2 + 1:
            return ""
        return f"durable on only {copies} node(s) of the voters {list(voters)}"

    def _committed_term(self, core: RaftCore, index: int) -> int:
        term = core.term_at(index)
        if term is None and index <= len(self.applied_terms):
            term = self.applied_terms[index - 1]  # compacted here, so applied somewhere
        if term is None:
            self._fail(f"{core.node_id}: commit index covers {index} but no term is known for it")
        assert term is not None
        return term

    # --- hooks called by the harness -------------------------------------------------------

    def counting_tick(self, node: SimNode, due: int, was_quiet: bool, before: CoreStatus) -> None:
        """After a tick that ``ticks_until_due`` promised would only count: nothing but
        counters may have changed (no role, term, progress or read change, no new output)."""
        core = node.core
        assert core is not None
        after = core.status()
        if after != before or (was_quiet and core.has_ready()):
            self._fail(
                f"{node.node_id}: a tick {due - 1} before the due one did more than count "
                f"({before} -> {after}, ready: {core.has_ready()})"
            )

    def observe(self, node: SimNode) -> None:
        """After every input to a node (tick, message, proposal, read, advance)."""
        core = node.core
        assert core is not None
        if core.role is Role.LEADER:
            term = core.term
            holder = self.leaders.get(term)
            if holder is None:
                self.leaders[term] = node.node_id
                self._check_won_by_majority(core)
                self._check_new_leader(core)
            elif holder != node.node_id:
                self._fail(f"Election Safety: {holder} and {node.node_id} both lead term {term}")
        elif core.role is not Role.FOLLOWER and not core.conf_state.is_voter(node.node_id):
            self._fail(
                f"{node.node_id} campaigns ({core.role.value}, term {core.term}) although it "
                f"is no voter of its configuration {core.conf_state}"
            )
        if core.role is Role.CANDIDATE or core.role is Role.LEADER:
            self._untrust_ghost(node.node_id)
        commit = core.commit_index
        watch = self._watch[node.node_id]
        if commit != watch.commit:
            if commit < watch.commit:
                self._fail(
                    f"{node.node_id}: commit index went back from {watch.commit} to {commit}"
                )
            watch.commit = commit
            self._check_commit(core, commit)
        if core.applied_index > commit:
            self._fail(f"{node.node_id}: applied {core.applied_index} beyond commit {commit}")

    def _check_commit(self, core: RaftCore, commit: int) -> None:
        ledger = self.ledger_terms
        known = len(ledger)
        if commit <= known:
            term = core.term_at(commit)
            if term is not None and term != ledger[commit - 1]:
                self._fail(
                    f"{core.node_id}: committed entry {commit} has term {term}, but term "
                    f"{ledger[commit - 1]} was committed there before"
                )
            return
        voters = core.conf_state.voters
        for index in range(known + 1, commit + 1):
            ledger.append(self._committed_term(core, index))
            self._ledger_commit_terms.append(core.term)
            self._ledger_voters.append(voters)
        term = ledger[commit - 1]
        short = self._short_of_majority(commit, term, voters)
        if short:
            self._fail(f"{core.node_id}: commit index {commit} (term {term}), entry {short}")
        for node in self._all:
            leader = node.core
            if leader is not None and leader.role is Role.LEADER and leader.term > core.term:
                self._check_leader_holds(leader, known + 1, commit)

    def _check_won_by_majority(self, leader: RaftCore) -> None:
        """The votes a new leader was sent must be a majority of its configuration's voters."""
        me = leader.node_id
        term = leader.term
        voters = leader.conf_state.voters
        votes = self._votes
        granted = [v for v in voters if v == me or votes.get((v, term)) == me]
        if len(granted) < len(voters) // 2 + 1:
            self._fail(
                f"Election Safety: {me} leads term {term} with votes from {granted} only, "
                f"not a majority of its voters {list(voters)}"
            )

    def _check_new_leader(self, leader: RaftCore) -> None:
        self._check_leader_holds(leader, 1, len(self.ledger_terms))

    def _check_leader_holds(self, leader: RaftCore, lo: int, hi: int) -> None:
        """Leader Completeness for ledger entries lo..hi committed before the leader's term."""
        term = leader.term
        commit_terms = self._ledger_commit_terms
        for index in range(max(lo, leader.snapshot_index + 1), hi + 1):
            if (
                commit_terms[index - 1] < term
                and leader.term_at(index) != self.ledger_terms[index - 1]
            ):
                self._fail(
                    f"Leader Completeness: {leader.node_id}, leader of term {term}, lacks "
                    f"entry {index} (term {self.ledger_terms[index - 1]}) committed in term "
                    f"{commit_terms[index - 1]}; its log has term {leader.term_at(index)}"
                )

    def on_ready(self, node: SimNode, rd: Ready) -> None:
        if not rd.entries:
            return
        core = node.core
        assert core is not None
        prev_term = core.term_at(rd.entries[0].index - 1)
        if prev_term is None:
            self._fail(f"{node.node_id}: Ready entries do not attach to its log")
        registry = self._entries
        for entry in rd.entries:
            assert prev_term is not None
            value = (entry.data, entry.type, prev_term)
            known = registry.setdefault((entry.index, entry.term), value)
            if known is value and entry.type is EntryType.CONF_CHANGE:
                self._check_change_follows_own_term_commit(node, entry)
            if known != value:
                self._fail(
                    f"Log Matching: {node.node_id} has entry {entry.index} of term "
                    f"{entry.term} = {value!r}, elsewhere it is {known!r}"
                )
            prev_term = entry.term

    def _check_change_follows_own_term_commit(self, node: SimNode, entry: Entry) -> None:
        """A configuration change first seen: its leader must have committed an entry of its
        term before appending it (committed terms never decrease along the log)."""
        ledger = self.ledger_terms
        below = min(len(ledger), entry.index - 1)
        at = bisect_left(ledger, entry.term, 0, below)
        if at == below or ledger[at] != entry.term:
            self._fail(
                f"Config change safety: {node.node_id} appended a configuration change at "
                f"{entry.index} in term {entry.term} before any entry of that term committed"
            )

    def on_persist(self, node: SimNode, before: HardState, hard: HardState | None) -> None:
        if hard is None:
            return
        if hard.term < before.term:
            self._fail(f"{node.node_id}: durable term went back from {before.term} to {hard.term}")
        if hard.term == before.term and before.vote is not None and hard.vote != before.vote:
            self._fail(
                f"{node.node_id}: durable vote in term {hard.term} changed from "
                f"{before.vote} to {hard.vote}"
            )

    def on_apply(self, node: SimNode, entry: Entry) -> None:
        index = entry.index
        terms = self.applied_terms
        if index <= len(terms):
            if terms[index - 1] != entry.term or self.applied_payloads[index - 1] != entry.data:
                self._fail(
                    f"State Machine Safety: {node.node_id} applied {entry.data!r} (term "
                    f"{entry.term}) at {index}; others applied "
                    f"{self.applied_payloads[index - 1]!r} (term {terms[index - 1]})"
                )
        elif index == len(terms) + 1:
            terms.append(entry.term)
            self.applied_payloads.append(entry.data)
        else:
            self._fail(f"{node.node_id} applied {index} but nothing was ever applied before it")
        if index > len(self.ledger_terms):
            self._fail(f"{node.node_id} applied entry {index} beyond any commit: never committed")
        short = self._short_of_majority(index, entry.term, self._ledger_voters[index - 1])
        if short:
            self._fail(
                f"{node.node_id} applied entry {index} (term {entry.term}) that is {short}: "
                "it was never committed"
            )

    def on_restore(self, node: SimNode) -> None:
        """The node's state machine was just restored from a snapshot."""
        count = len(node.sm.terms)
        if count > len(self.applied_terms):
            self._fail(f"{node.node_id} restored a state beyond anything ever applied")
        if (
            node.sm.terms != self.applied_terms[:count]
            or node.sm.payloads != self.applied_payloads[:count]
        ):
            self._fail(f"State Machine Safety: {node.node_id} restored a diverging snapshot")

    def on_compact(self, node: SimNode, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        if node.storage.term_at(meta.index) != meta.term:
            self._fail(f"{node.node_id}: snapshot at {meta.index} does not match its durable log")

    def on_crash(self, node: SimNode) -> None:
        watch = self._watch[node.node_id]
        watch.applied_before_crash = max(watch.applied_before_crash, node.sm.applied_index)

    def on_restart(self, node: SimNode) -> None:
        core = node.core
        assert core is not None
        watch = self._watch[node.node_id]
        if core.commit_index < watch.applied_before_crash:
            self._fail(
                f"{node.node_id} restarted with commit {core.commit_index} below the "
                f"{watch.applied_before_crash} it had applied"
            )
        watch.commit = core.commit_index
        self.on_restore(node)
        self.observe(node)

    def on_wipe(self, node: SimNode) -> None:
        """``node`` (crashed) lost its whole storage and restarts in recovery mode."""
        self._ghosts.setdefault(node.node_id, []).append(node.storage)
        self._watch[node.node_id] = _NodeWatch()  # it starts over from nothing

    def on_recovered(self, node: SimNode) -> None:
        """``node`` persisted the Ready that ended its recovery: from now on only what its
        storage holds counts."""
        self._untrust_ghost(node.node_id)

    def on_send(self, msg: Message) -> None:
        """Every message a node sends (votes are checked: one candidate per voter and term)."""
        if msg.type is MsgType.VOTE_RESP and not msg.reject:
            self._untrust_ghost(msg.frm)
            chosen = self._votes.setdefault((msg.frm, msg.term), msg.to)
            if chosen != msg.to:
                self._fail(f"{msg.frm} voted for both {chosen} and {msg.to} in term {msg.term}")
