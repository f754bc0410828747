"""The driver's membership calls on real node drivers over in-memory twins: adding (and the
leader's automatic promotion), promoting, removing, handing leadership over, and the links
the transport keeps following the configuration."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from raft3d.node.addresses import decode_context, encode_context
from raft3d.node.driver import RaftNode
from raft3d.node.errors import (
    ConfChangeError,
    LearnerNotCaughtUpError,
    MemberExistsError,
    NotLeaderError,
    TransferRefusedError,
    UnknownMemberError,
    WouldLoseQuorumError,
)
from raft3d.node.memory import MemoryStorage, MemoryTransport
from raft3d.node.options import MemberAddress, NodeOptions
from raft3d.node.wiring import core_config
from tests.support.machines import Register
from tests.support.memcluster import MemoryCluster
from tests.support.settings import FAST_RAFT
from tests.support.waiting import eventually

Node = RaftNode[int]


@pytest.fixture
async def cluster() -> AsyncIterator[MemoryCluster[int]]:
    c: MemoryCluster[int] = MemoryCluster({n: Register() for n in ("a", "b", "c")})
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def joiner(cluster: MemoryCluster[int], node_id: str) -> Node:
    """A node with an empty configuration, as one started to join a cluster."""
    machine = Register()
    cluster.machines[node_id] = machine
    cluster.storages[node_id] = MemoryStorage()
    options = NodeOptions(
        core=core_config(node_id, (), FAST_RAFT),
        tick_s=FAST_RAFT.tick_ms / 1000,
        snapshot_threshold=0,
        default_timeout_s=5.0,
    )
    transport = cluster.network.transport(
        node_id, lambda msg: node.receive(msg), lambda peer, up: node.peer_changed(peer, up)
    )
    node: Node = RaftNode(
        options, cluster.storages[node_id], transport, machine, rng=random.Random(7)
    )
    cluster.nodes[node_id] = node
    return node


def voters(node: Node) -> list[str]:
    return [m.node_id for m in node.membership().members if m.suffrage == "voter"]


def learners(node: Node) -> list[str]:
    return [m.node_id for m in node.membership().members if m.suffrage == "learner"]


def test_a_context_carries_both_addresses() -> None:
    context = encode_context("10.0.0.4:7000", "https://10.0.0.4:8000")
    assert decode_context(context) == MemberAddress("10.0.0.4:7000", "https://10.0.0.4:8000")
    assert decode_context(b"") is None
    assert decode_context(b"\xc1") is None  # not msgpack
    assert decode_context(encode_context("", "http://x:1")) is None


async def test_membership_lists_the_bootstrap_voters(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    view = leader.membership()
    assert view.config_index == 0 and not view.change_pending
    assert [m.node_id for m in view.members] == ["a", "b", "c"]
    assert {m.suffrage for m in view.members} == {"voter"}
    own = next(m for m in view.members if m.node_id == leader.node_id)
    assert own.reachable and own.match_index == leader.core.last_index
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    assert all(m.match_index is None for m in follower.membership().members)
    assert follower.status().suffrage == "voter"


async def test_an_added_member_catches_up_and_is_promoted(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    await leader.propose(b"5")
    d = joiner(cluster, "d")
    await d.start()
    assert d.status().suffrage == "none"
    view = await leader.add_member("d", "127.0.0.1:7004", "http://127.0.0.1:8004")
    d_info = next(m for m in view.members if m.node_id == "d")
    assert (d_info.raft_addr, d_info.http_addr) == ("127.0.0.1:7004", "http://127.0.0.1:8004")
    assert view.config_index > 0
    await eventually(lambda: voters(leader) == ["a", "b", "c", "d"], 10, "d promoted")
    await eventually(lambda: d.status().suffrage == "voter", 10, "d to know it votes")
    await leader.propose(b"7")
    machine = cluster.machines["d"]
    assert isinstance(machine, Register)
    await eventually(lambda: machine.value == 7, 10, "d to apply")
    # Every node learned d's addresses from the entry that added it.
    for node in cluster.nodes.values():
        assert node.address_of("d") == MemberAddress("127.0.0.1:7004", "http://127.0.0.1:8004")


async def test_a_manual_learner_stays_one_until_promoted(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    d = joiner(cluster, "d")
    await d.start()
    await leader.add_member("d", "127.0.0.1:7004", "http://127.0.0.1:8004", promote=False)
    await leader.propose(b"1")
    await eventually(lambda: d.applied_index >= leader.applied_index, 10, "d to catch up")
    assert learners(leader) == ["d"]
    assert d.status().suffrage == "learner"
    peer = next(p for p in leader.status().peers if p.node_id == "d")
    assert peer.suffrage == "learner"
    with pytest.raises(TransferRefusedError, match="learner"):
        await leader.transfer_leadership("d")
    view = await leader.promote_member("d")
    assert "d" in [m.node_id for m in view.members if m.suffrage == "voter"]
    with pytest.raises(ConfChangeError, match="already a voter"):
        await leader.promote_member("d")


async def test_a_learner_that_never_answered_is_not_promoted_by_hand_unless_forced(
    cluster: MemoryCluster[int],
) -> None:
    # e is added but never started: as a voter it would be a dead one (4 voters, 3 alive).
    leader = await cluster.leader()
    await leader.add_member("e", "127.0.0.1:7005", "http://127.0.0.1:8005", promote=False)
    with pytest.raises(LearnerNotCaughtUpError, match="has not caught up") as refused:
        await leader.promote_member("e")
    assert refused.value.match_index == 0
    assert learners(leader) == ["e"]
    view = await leader.promote_member("e", force=True)
    assert "e" in [m.node_id for m in view.members if m.suffrage == "voter"]


async def test_bad_changes_are_refused_and_change_nothing(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    before = leader.membership()
    with pytest.raises(MemberExistsError):
        await leader.add_member("b", "127.0.0.1:7999", "http://127.0.0.1:8999")
    await leader.add_member("d", "127.0.0.1:7004", "http://127.0.0.1:8004", promote=False)
    with pytest.raises(MemberExistsError, match="already used by member 'd'"):
        await leader.add_member("e", "127.0.0.1:7004", "http://127.0.0.1:8005")
    with pytest.raises(UnknownMemberError):
        await leader.remove_member("zz")
    with pytest.raises(UnknownMemberError):
        await leader.promote_member("zz")
    with pytest.raises(TransferRefusedError, match="not a member"):
        await leader.transfer_leadership("zz")
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    with pytest.raises(NotLeaderError) as caught:
        await follower.add_member("e", "127.0.0.1:7005", "http://127.0.0.1:8005")
    assert caught.value.leader_id == leader.node_id
    with pytest.raises(NotLeaderError):
        await follower.transfer_leadership()
    assert [m.node_id for m in leader.membership().members] == ["a", "b", "c", "d"]
    assert before.config_index < leader.membership().config_index


async def test_removing_below_a_reachable_quorum_is_refused(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    others = [n for n in ("a", "b", "c") if n != leader.node_id]
    cluster.network.cut(leader.node_id, others[0])
    # Left would be the leader and others[0], which it cannot reach: one of a quorum of two.
    with pytest.raises(WouldLoseQuorumError):
        await leader.remove_member(others[1])
    assert voters(leader) == ["a", "b", "c"]
    # Removing the unreachable one leaves two reachable voters: allowed.
    cluster.network.heal(leader.node_id, others[0])
    await eventually(lambda: leader.transport.reachable(others[0]), 10, "link back")
    cluster.network.cut(leader.node_id, others[0])
    view = await leader.remove_member(others[0])
    assert [m.node_id for m in view.members] == sorted([leader.node_id, others[1]])


async def test_a_removed_member_stops_and_is_unlinked(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    gone = next(n for n in cluster.nodes.values() if n is not leader)
    view = await leader.remove_member(gone.node_id)
    assert gone.node_id not in [m.node_id for m in view.members]
    await eventually(lambda: gone.status().suffrage == "removed", 10, "removal to reach it")
    transport = leader.transport
    assert isinstance(transport, MemoryTransport)
    await eventually(lambda: gone.node_id not in transport.peers, 10, "link dropped")
    gone_transport = gone.transport
    assert isinstance(gone_transport, MemoryTransport)
    await eventually(lambda: gone_transport.peers == (), 10, "removed node to drop its links")
    await leader.propose(b"3")  # the two left commit alone
    assert gone.core.role.value == "follower"


async def test_leadership_moves_to_the_target(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    await leader.propose(b"1")
    target = next(n for n in ("a", "b", "c") if n != leader.node_id)
    await eventually(
        lambda: cluster.nodes[target].applied_index >= leader.applied_index, 10, "caught up"
    )
    assert await leader.transfer_leadership(target) == target
    assert cluster.nodes[target].is_leader
    new = cluster.nodes[target]
    assert await new.transfer_leadership(target) == target  # already there
    picked = await new.transfer_leadership()
    assert picked != target and cluster.nodes[picked].is_leader


async def test_a_leader_removing_itself_hands_over(cluster: MemoryCluster[int]) -> None:
    leader = await cluster.leader()
    view = await leader.remove_member(leader.node_id)
    assert leader.node_id not in [m.node_id for m in view.members]

    def new_leader() -> bool:
        return any(n.is_leader for n in cluster.nodes.values() if n is not leader)

    await eventually(new_leader, 10, "another leader")
    assert leader.status().suffrage == "removed"
    successor = next(n for n in cluster.nodes.values() if n.is_leader)
    assert await successor.propose(b"9") == 9


async def test_the_last_voter_cannot_be_removed() -> None:
    c: MemoryCluster[int] = MemoryCluster({"a": Register()})
    await c.start()
    try:
        leader = await c.leader()
        with pytest.raises(ConfChangeError, match="last voter"):
            await leader.remove_member("a")
        with pytest.raises(TransferRefusedError, match="no other voter"):
            await leader.transfer_leadership()
    finally:
        await c.stop()
