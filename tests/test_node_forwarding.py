"""Proposals a follower forwards to the leader over the peer link, on real node drivers over
the in-memory twins: the leader proposes them and answers at once, the follower waits for its
own apply, and every way it can end is told apart (committed, safe to retry, in doubt,
timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator

import pytest

from raft3d.consensus.types import SnapshotData
from raft3d.node.driver import RaftNode
from raft3d.node.errors import (
    EntryTooLargeError,
    ForwardLostError,
    NotLeaderError,
    OutcomeUnknownError,
)
from raft3d.node.metrics import NodeCollector
from raft3d.transport import proposals as wire
from raft3d.transport.proposals import ForwardedProposal, PeerMessage, ProposalAnswer
from tests.support.machines import EagerCapture, KeptOutcomes
from tests.support.memcluster import MemoryCluster
from tests.support.waiting import eventually


class Journal(KeptOutcomes[tuple[int, bytes]]):
    """Records every command; ``apply`` returns (index, command)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[bytes] = []

    def apply(self, index: int, data: bytes) -> tuple[int, bytes]:
        self.commands.append(data)
        return self.keep(index, (index, data))

    def capture(self) -> EagerCapture:
        return EagerCapture(b"".join(self.commands))

    def restore(self, data: bytes) -> None:
        self.commands = [data]

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield
        self.restore(data[0 : len(data)])


Node = RaftNode[tuple[int, bytes]]
Cluster = MemoryCluster[tuple[int, bytes]]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c: Cluster = MemoryCluster({n: Journal() for n in ("a", "b", "c")})
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def roles(cluster: Cluster) -> tuple[Node, Node]:
    """The leader and a follower that knows it and has its link to it up."""
    leader = await cluster.leader()
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    await eventually(
        lambda: (
            follower.leader_id == leader.node_id and follower.transport.reachable(leader.node_id)
        ),
        10,
        "the follower to know the leader",
    )
    return leader, follower


def machine(cluster: Cluster, node: Node) -> Journal:
    m = cluster.machines[node.node_id]
    assert isinstance(m, Journal)
    return m


def capture_sent(node: Node) -> list[PeerMessage]:
    """Keep what ``node`` sends, still sending it."""
    sent: list[PeerMessage] = []
    send = node.transport.send

    def recording(msg: PeerMessage) -> bool:
        sent.append(msg)
        return send(msg)

    node.transport.send = recording  # type: ignore[method-assign]
    return sent


def answer_with(leader: Node, make: Callable[[ForwardedProposal], ProposalAnswer]) -> None:
    """The leader answers forwarded proposals with ``make`` instead of proposing them."""

    def received(proposal: ForwardedProposal) -> None:
        leader.transport.send(make(proposal))

    leader.forwarding.received = received  # type: ignore[method-assign]


async def test_a_follower_write_commits_through_the_peer_link(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    before = leader.counters.proposals["not_leader"]
    index, command = await follower.propose(b"from-follower", 5.0)
    assert command == b"from-follower"
    # The result is the follower's own apply: it holds the write when propose returns.
    assert follower.applied_index >= index
    assert machine(cluster, follower).commands[-1] == b"from-follower"
    assert machine(cluster, follower).outcomes[index] == (index, b"from-follower")
    await eventually(lambda: leader.applied_index >= index, 5, "the leader to apply")
    assert machine(cluster, leader).commands.count(b"from-follower") == 1
    assert follower.counters.forwarded["sent"] == 1
    assert leader.counters.forwarded["received"] == 1
    assert leader.counters.forwarded["refused"] == 0
    assert follower.counters.proposals["not_leader"] == 0
    assert leader.counters.proposals["not_leader"] == before


async def test_many_concurrent_forwarded_writes_each_get_their_own_result(
    cluster: Cluster,
) -> None:
    _, follower = await roles(cluster)
    commands = [f"w{i}".encode() for i in range(50)]
    results = await asyncio.gather(*(follower.propose(c, 5.0) for c in commands))
    assert [c for _, c in results] == commands
    assert len({i for i, _ in results}) == 50
    assert follower.counters.forwarded["sent"] == 50


async def test_a_forwarded_proposer_resumes_in_the_turn_its_entry_is_applied(
    cluster: Cluster,
) -> None:
    """Not a turn of the loop later (as through ``asyncio.shield``): on a busy follower a
    turn is a whole batch of HTTP requests."""
    _, follower = await roles(cluster)
    loop = asyncio.get_running_loop()
    order: list[str] = []
    journal = machine(cluster, follower)
    apply = journal.apply

    def applying(index: int, data: bytes) -> tuple[int, bytes]:
        if data == b"turn":
            # Runs next turn, before the proposer's wake-up (queued once this returns), and
            # queues the marker behind that wake-up.
            loop.call_soon(loop.call_soon, order.append, "a turn later")
        return apply(index, data)

    journal.apply = applying  # type: ignore[method-assign]
    await follower.propose(b"turn", 5.0)
    order.append("proposer")
    await eventually(lambda: len(order) == 2, 5, "the marker to run")
    assert order == ["proposer", "a turn later"]


async def test_the_forwarded_counts_are_metrics(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    await follower.propose(b"x", 5.0)
    families = {f.name: f for f in NodeCollector(follower).collect()}
    samples = {s.labels["event"]: s.value for s in families["raft3d_forwarded_proposals"].samples}
    assert samples["sent"] == 1 and samples["received"] == 0
    assert set(samples) >= set(("sent", "received", "refused", "lost", "replaced"))
    families = {f.name: f for f in NodeCollector(leader).collect()}
    samples = {s.labels["event"]: s.value for s in families["raft3d_forwarded_proposals"].samples}
    assert samples["received"] == 1


async def test_a_forwarded_proposal_is_never_forwarded_again(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    other = next(n for n in cluster.nodes.values() if n not in (leader, follower))
    sent = capture_sent(follower)
    last = leader.core.last_index
    # ``other`` forwards to ``follower`` as if it were the leader.
    follower.receive(ForwardedProposal(follower.node_id, other.node_id, 7, b"x", budget_ms=1000))
    answers = [m for m in sent if isinstance(m, ProposalAnswer)]
    assert answers == [
        ProposalAnswer(other.node_id, follower.node_id, 7, refusal=wire.NOT_LEADER,
                       leader_id=leader.node_id)
    ]  # fmt: skip
    assert not [m for m in sent if isinstance(m, ForwardedProposal)]
    assert follower.counters.forwarded["refused"] == 1
    assert leader.core.last_index == last


async def test_a_leader_refuses_what_is_too_large_or_expired(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    sent = capture_sent(leader)
    limit = leader.options.core.max_entry_bytes
    leader.receive(ForwardedProposal(leader.node_id, follower.node_id, 1, b"x" * (limit + 1), 0, 5))
    leader.receive(ForwardedProposal(leader.node_id, follower.node_id, 2, b"y", budget_ms=0))
    answers = [m for m in sent if isinstance(m, ProposalAnswer)]
    assert [(a.proposal_id, a.refusal, a.limit) for a in answers] == [
        (1, wire.TOO_LARGE, limit),
        (2, wire.EXPIRED, 0),
    ]
    assert leader.counters.forwarded["refused"] == 2


async def test_a_too_large_refusal_reaches_the_proposer_as_such(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    answer_with(
        leader,
        lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, refusal=wire.TOO_LARGE, limit=3),
    )
    with pytest.raises(EntryTooLargeError) as caught:
        await follower.propose(b"four", 5.0)
    assert caught.value.limit == 3


async def test_a_leader_handing_over_refuses_and_the_proposer_may_retry(
    cluster: Cluster,
) -> None:
    leader, follower = await roles(cluster)
    answer_with(
        leader,
        lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, refusal=wire.TRANSFERRING),
    )
    with pytest.raises(NotLeaderError) as caught:
        await follower.propose(b"x", 5.0)
    assert caught.value.leader_id is None  # look again: nothing was appended
    assert follower.counters.proposals["not_leader"] == 1


async def test_without_a_link_to_the_leader_nothing_is_sent(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    cluster.network.cut(follower.node_id, leader.node_id)
    with pytest.raises(NotLeaderError):
        await follower.propose(b"x", 5.0)
    assert follower.counters.forwarded["sent"] == 0  # certainly not delivered: safe to retry


async def test_a_proposal_dropped_by_a_full_send_queue_is_safe_to_retry_at_once(
    cluster: Cluster,
) -> None:
    leader, follower = await roles(cluster)
    send = follower.transport.send

    def full_queue(msg: PeerMessage) -> bool:
        if isinstance(msg, ForwardedProposal):
            return False  # what the real transport does with its queue at the limit
        return send(msg)

    follower.transport.send = full_queue  # type: ignore[method-assign]
    with pytest.raises(NotLeaderError) as caught:
        # At once, and not in doubt: it was never sent (before, the 30 s deadline ran out
        # and the write was reported outcome_unknown).
        await asyncio.wait_for(follower.propose(b"x", 30.0), 5.0)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert caught.value.leader_id == leader.node_id  # named, for the HTTP path
    assert follower.counters.forwarded["unsent"] == 1
    assert follower.counters.forwarded["sent"] == 0
    assert len(follower.forwarding) == 0  # nothing left waiting
    follower.transport.send = send  # type: ignore[method-assign]
    index, command = await follower.propose(b"y", 5.0)  # the queue has room again
    assert command == b"y"
    await eventually(lambda: leader.applied_index >= index, 5, "the leader to apply")
    assert b"x" not in machine(cluster, leader).commands


async def test_a_leader_lost_before_answering_leaves_the_outcome_unknown(
    cluster: Cluster,
) -> None:
    leader, follower = await roles(cluster)
    leader.forwarding.received = lambda proposal: None  # type: ignore[method-assign]
    proposing = asyncio.ensure_future(follower.propose(b"x", 30.0))
    await eventually(lambda: len(follower.forwarding) == 1, 5, "the proposal to be sent")
    cluster.network.cut(follower.node_id, leader.node_id)
    with pytest.raises(ForwardLostError) as caught:
        await asyncio.wait_for(proposing, 5.0)  # at once, not at the 30 s deadline
    assert isinstance(caught.value, OutcomeUnknownError)
    assert follower.counters.forwarded["lost"] == 1


async def test_no_answer_by_the_deadline_is_outcome_unknown(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    leader.forwarding.received = lambda proposal: None  # type: ignore[method-assign]
    with pytest.raises(ForwardLostError):
        await follower.propose(b"x", 0.2)


async def test_appended_but_not_committed_in_time_is_a_timeout(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    far = leader.core.last_index + 10_000
    answer_with(leader, lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, far, leader.core.term))
    with pytest.raises(TimeoutError) as caught:
        await follower.propose(b"x", 0.3)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert far not in follower.step.proposals  # nobody waits there any more


async def test_an_entry_replaced_at_its_index_is_forwarded_again(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    real = leader.forwarding.received
    slot = leader.core.last_index + 1
    # The first time, the "leader" claims an append of another term at the next index,
    # which its own next proposal then takes: the forwarded write certainly did not commit.
    answer_with(
        leader, lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, slot, leader.core.term + 9)
    )
    proposing = asyncio.ensure_future(follower.propose(b"mine", 5.0))
    await eventually(lambda: slot in follower.step.proposals, 5, "the follower to wait on it")
    leader.forwarding.received = real  # type: ignore[method-assign]
    assert await leader.propose(b"the leader's", 5.0) == (slot, b"the leader's")
    index, command = await asyncio.wait_for(proposing, 5.0)
    assert command == b"mine" and index > slot
    assert follower.counters.forwarded["replaced"] == 1
    assert follower.counters.forwarded["sent"] == 2
    assert machine(cluster, follower).commands.count(b"mine") == 1


async def test_a_late_answer_for_an_applied_index_uses_what_was_applied(
    cluster: Cluster,
) -> None:
    leader, follower = await roles(cluster)
    index, _ = await leader.propose(b"first", 5.0)
    await eventually(lambda: follower.applied_index >= index, 5, "the follower to apply")
    term = follower.core.term_at(index)
    assert term is not None
    # Answers naming an index this node applied already: its own entry, and another term's.
    answer_with(leader, lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, index, term))
    assert await follower.propose(b"ignored", 5.0) == (index, b"first")
    answers = iter([term + 5, term])  # another term's entry there first: sent again
    answer_with(leader, lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, index, next(answers)))
    assert await follower.propose(b"ignored", 5.0) == (index, b"first")
    assert follower.counters.forwarded["replaced"] == 1


async def test_a_halted_leader_refuses_at_once(cluster: Cluster) -> None:
    leader, follower = await roles(cluster)
    leader._halt(RuntimeError("disk gone"))
    with pytest.raises(NotLeaderError):
        await asyncio.wait_for(follower.propose(b"x", 30.0), 5.0)  # not at the deadline
    assert leader.counters.forwarded["refused"] == 1


async def test_a_known_leader_without_a_link_is_named_for_the_http_fallback(
    cluster: Cluster,
) -> None:
    leader, follower = await roles(cluster)
    # The leader's heartbeats still arrive (its link to us), but ours to it is down.
    follower.transport.reachable = lambda peer: False  # type: ignore[method-assign]
    with pytest.raises(NotLeaderError) as caught:
        await follower.propose(b"x", 5.0)
    assert caught.value.leader_id == leader.node_id  # the HTTP layer forwards to it
    assert follower.counters.forwarded["sent"] == 0


async def test_a_not_leader_refusal_is_followed_to_the_named_leader_once(
    cluster: Cluster,
) -> None:
    leader, follower = await roles(cluster)
    other = next(n for n in cluster.nodes.values() if n not in (leader, follower))
    # The leader says it is not, and names the third node, which says the same of the leader.
    answer_with(
        leader,
        lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, refusal=wire.NOT_LEADER,
                                 leader_id=other.node_id),
    )  # fmt: skip
    answer_with(
        other,
        lambda p: ProposalAnswer(p.frm, p.to, p.proposal_id, refusal=wire.NOT_LEADER,
                                 leader_id=leader.node_id),
    )  # fmt: skip
    await eventually(lambda: follower.transport.reachable(other.node_id), 5, "link to other")
    with pytest.raises(NotLeaderError) as caught:
        await follower.propose(b"x", 5.0)
    assert caught.value.leader_id is None  # the caller looks again later
    assert follower.counters.forwarded["sent"] == 2  # the leader, then the node it named
