"""Proposals a follower forwards to the leader over the peer link, and the leader's side.

The follower sends the encoded command (``ForwardedProposal``); the leader proposes it as if
it were its own and answers at once with the (index, term) it appended it at, or a refusal
(``ProposalAnswer``). It never forwards a forwarded proposal again. The follower then waits,
like a local proposer, for its OWN state machine to apply that index: the same term there
means the proposal committed, and the result is this node's own (the state machine is
deterministic); another term's entry applied at that index means it certainly did not
commit, and it is forwarded again, to whoever leads now, while the deadline allows.

What the proposer is told:

- ``NotLeaderError``: it could not be forwarded (no leader known, no link up to it, or the
  link's send queue full), or a leader refused it: nothing was appended, trying again is
  safe.
- ``ForwardLostError`` (an ``OutcomeUnknownError``): it was sent, and the leader or the link
  was lost before an answer came: the leader may have appended it.
- ``TimeoutError``: the leader appended it, but it was not seen to commit in time.
- ``EntryTooLargeError`` from the leader's refusal; the outcome of applying it otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from raft3d.consensus import RaftCore
from raft3d.node.errors import (
    EntryTooLargeError,
    ForwardLostError,
    LeadershipTransferError,
    NodeStoppedError,
    NotCommittedError,
    NotLeaderError,
    OutcomeUnknownError,
)
from raft3d.node.proposals import Expired, expire
from raft3d.node.ready import NodeCounters, ReadyStep
from raft3d.node.seams import Transport
from raft3d.transport import proposals as wire
from raft3d.transport.proposals import ForwardedProposal, ProposalAnswer

log = logging.getLogger("raft3d.node")

R = TypeVar("R")

# Counted in ``NodeCounters.forwarded`` (``raft3d_forwarded_proposals_total{event}``).
FORWARD_EVENTS = ("sent", "received", "refused", "lost", "replaced", "unsent")


@dataclass(slots=True)
class _Waiting(Generic[R]):
    leader: str
    future: asyncio.Future[R]
    index: int = 0  # set by the leader's answer
    term: int = 0


class _Refused(Exception):
    """A leader refused the proposal: nothing was appended."""

    def __init__(self, answer: ProposalAnswer) -> None:
        super().__init__(answer.refusal)
        self.answer = answer


class ForwardingNode(Protocol[R]):
    """What forwarding uses of its ``RaftNode``."""

    @property
    def node_id(self) -> str: ...

    @property
    def leader_id(self) -> str | None:
        """The leader this node knows now."""
        ...

    @property
    def transport(self) -> Transport: ...

    @property
    def counters(self) -> NodeCounters: ...

    @property
    def step(self) -> ReadyStep[R]:
        """Its bookkeeping: applied index, outcomes, waiting proposals."""
        ...

    @property
    def core(self) -> RaftCore: ...

    def propose_here(self, data: bytes) -> tuple[int, int]:
        """Propose on this node's core; raises as ``RaftCore.propose`` or NodeStoppedError."""
        ...


class ProposalForwarding(Generic[R]):
    """Both sides of forwarding for one node (``counts``: ``FORWARD_EVENTS``)."""

    def __init__(self, node: ForwardingNode[R]) -> None:
        self._node = node
        self._node_id = node.node_id
        self.counts = counts = node.counters.forwarded
        for event in FORWARD_EVENTS:
            counts.setdefault(event, 0)
        self._waiting: dict[int, _Waiting[R]] = {}
        self._next_id = 0

    def __len__(self) -> int:
        """Forwarded proposals waiting for the leader's answer."""
        return sum(1 for w in self._waiting.values() if not w.index)

    # -- the follower's side ---------------------------------------------------------------

    async def propose(self, data: bytes, leader: str | None, timeout: float) -> R:
        """Forward ``data`` to ``leader`` (re-forwarding while another entry replaces it) and
        return this node's result of applying it; see the module docstring for the errors."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        hinted = False  # a refusal's hint is followed once: two stale views never ping-pong
        while True:
            if (
                leader is None
                or leader == self._node_id
                or not self._node.transport.reachable(leader)
            ):
                raise NotLeaderError(leader)
            try:
                return await self._once(leader, data, deadline)
            except NotCommittedError:
                self.counts["replaced"] += 1
                leader = self._node.leader_id
            except _Refused as exc:
                answer = exc.answer
                if answer.refusal == wire.TOO_LARGE:
                    raise EntryTooLargeError(len(data), answer.limit) from None
                hint = answer.leader_id or None
                if answer.refusal != wire.NOT_LEADER or hint in (None, answer.frm) or hinted:
                    # Transferring, stopping or lost its place: the caller looks again soon.
                    raise NotLeaderError(None) from None
                leader, hinted = hint, True
            if loop.time() >= deadline:
                raise NotLeaderError(None)  # nothing pending anywhere: no leader took it

    async def _once(self, leader: str, data: bytes, deadline: float) -> R:
        loop = asyncio.get_running_loop()
        self._next_id += 1
        pid = self._next_id
        waiting: _Waiting[R] = _Waiting(leader, loop.create_future())
        self._waiting[pid] = waiting
        # The link reckons in monotonic time; the loop's clock may be another (uvloop's).
        budget = deadline - loop.time()
        proposal = ForwardedProposal(leader, self._node_id, pid, data, time.monotonic() + budget)
        if not self._node.transport.send(proposal):
            # Dropped at once (the link's queue is full): certainly never delivered, so safe
            # to retry, not in doubt; the leader is named for the HTTP path.
            del self._waiting[pid]
            self.counts["unsent"] += 1
            raise NotLeaderError(leader)
        self.counts["sent"] += 1
        # Awaited as it is, not through a shield: a shield answers one turn of the loop
        # later. The deadline fails the future (``expire``: a timer, cheaper than
        # ``asyncio.timeout``), as the caller leaving cancels it; everything that settles
        # it skips a future that is done.
        timer = loop.call_at(deadline, expire, waiting.future)
        try:
            return await waiting.future
        except Expired:
            if not waiting.index:
                self.counts["lost"] += 1
                raise ForwardLostError(leader, f"no answer within {budget:.3g} s") from None
            raise TimeoutError(
                f"entry {waiting.index} (term {waiting.term}) was not seen to commit within "
                f"{budget:.3g} s"
            ) from None
        finally:
            timer.cancel()
            del self._waiting[pid]
            if waiting.index:
                self._node.step.proposals.forget(waiting.index, waiting.future)
            if not waiting.future.done():
                waiting.future.cancel()

    def answered(self, answer: ProposalAnswer) -> None:
        """The leader's answer: a refusal ends the wait; an (index, term) starts the wait
        for this node to apply that index."""
        waiting = self._waiting.get(answer.proposal_id)
        if waiting is None or waiting.index or waiting.future.done():
            return  # the proposer gave up meanwhile
        if answer.frm != waiting.leader:
            return  # not from the node it was sent to
        future = waiting.future
        if answer.refusal:
            future.set_exception(_Refused(answer))
            return
        index, term = answer.index, answer.term
        waiting.index, waiting.term = index, term
        step = self._node.step
        if step.applied < index:
            step.proposals.add(index, term, future, forwarded=True)
            return
        # Already applied here (the answer came late): look at what holds the index.
        held = self._node.core.term_at(index)
        outcome = step.outcome(index)
        if held is None or (held == term and outcome is None):
            future.set_exception(OutcomeUnknownError(index, term))
        elif held == term:
            assert outcome is not None
            future.set_result(outcome)
        else:
            future.set_exception(NotCommittedError(index, term))

    def link_lost(self, peer: str) -> None:
        """The link to ``peer`` went down: what was sent to it and not answered is in doubt."""
        for waiting in self._waiting.values():
            if waiting.leader == peer and not waiting.index and not waiting.future.done():
                self.counts["lost"] += 1
                waiting.future.set_exception(ForwardLostError(peer, "the link to it was lost"))

    # -- the leader's side -----------------------------------------------------------------

    def received(self, proposal: ForwardedProposal) -> None:
        """Propose what a follower forwarded, here only, and answer at once."""
        self.counts["received"] += 1
        refusal, leader, limit = "", "", 0
        index = term = 0
        if proposal.budget_ms <= 0:
            refusal = wire.EXPIRED
        else:
            try:
                index, term = self._node.propose_here(proposal.data)
            except NotLeaderError as exc:
                refusal, leader = wire.NOT_LEADER, exc.leader_id or ""
            except EntryTooLargeError as exc:
                refusal, limit = wire.TOO_LARGE, exc.limit
            except LeadershipTransferError:
                refusal = wire.TRANSFERRING
            except NodeStoppedError:
                refusal = wire.STOPPED
        if refusal:
            self.counts["refused"] += 1
        self._node.transport.send(
            ProposalAnswer(
                proposal.frm,
                self._node_id,
                proposal.proposal_id,
                index,
                term,
                refusal,
                leader,
                limit,
            )
        )
