"""Real nodes in one process (durable storage, the TCP transport on loopback): the identity
written at first start, a blank node joining with ``joining=True``, and a node of another
cluster refused at the handshake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from raft3d.config import Address, Member, Settings
from raft3d.node.driver import RaftNode
from raft3d.node.recovery import DataDirMarks
from raft3d.node.wiring import build_node, node_options, seed_cluster_id
from raft3d.storage.identity import read_identity
from raft3d.transport import Transport
from tests.support.machines import Register
from tests.support.procs import free_ports
from tests.support.settings import FAST_RAFT, SECRET
from tests.support.waiting import eventually

Node = RaftNode[int]
LOOPBACK = "127.0.0.1"


def member(node_id: str, ports: dict[str, tuple[int, int]]) -> Member:
    http, raft = ports[node_id]
    return Member(node_id, Address(LOOPBACK, http), Address(LOOPBACK, raft))


def settings(root: Path, node_id: str, members: tuple[Member, ...]) -> Settings:
    own = next(m for m in members if m.node_id == node_id)
    return Settings(
        node_id=node_id,
        http=own.http,
        raft=own.raft,
        data_dir=root / node_id,
        cluster_secret=SECRET,
        members=members,
        raft_settings=FAST_RAFT,
    )


class Nodes:
    def __init__(self, root: Path) -> None:
        self.root = root
        ids = ("a", "b", "c", "d", "x")
        ports = free_ports(2 * len(ids))
        self.ports = {n: (ports[2 * i], ports[2 * i + 1]) for i, n in enumerate(ids)}
        self.seed = tuple(member(n, self.ports) for n in ("a", "b", "c"))
        self.running: dict[str, Node] = {}

    def alone(self, node_id: str) -> tuple[Member, ...]:
        return (member(node_id, self.ports),)

    async def start(self, s: Settings, joining: bool | None = None) -> Node:
        node: Node = build_node(s, Register(), joining=joining)
        await node.start()
        self.running[s.node_id] = node
        return node

    async def stop(self, node_id: str) -> None:
        await self.running.pop(node_id).stop()

    async def leader(self) -> Node:
        def one() -> bool:
            return sum(1 for n in self.running.values() if n.is_leader) == 1

        await eventually(one, 20, "one leader")
        return next(n for n in self.running.values() if n.is_leader)


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    n = Nodes(tmp_path)
    try:
        for node_id in ("a", "b", "c"):
            await n.start(settings(tmp_path, node_id, n.seed))
        yield n
    finally:
        for node_id in list(n.running):
            await n.stop(node_id)


async def test_bootstrap_members_write_one_cluster_id_and_their_own_incarnation(
    nodes: Nodes,
) -> None:
    leader = await nodes.leader()
    expected = seed_cluster_id(settings(nodes.root, "a", nodes.seed))
    identities = [read_identity(nodes.root / n) for n in ("a", "b", "c")]
    assert all(i is not None and i.cluster_id == expected for i in identities)
    assert len({i.incarnation for i in identities if i is not None}) == 3
    assert leader.status().cluster_id == expected
    # Derived from the member ids and the secret only: addresses may move.
    moved = tuple(replace(m, raft=Address(LOOPBACK, 1)) for m in nodes.seed)
    assert seed_cluster_id(settings(nodes.root, "a", moved)) == expected
    other_secret = replace(settings(nodes.root, "a", nodes.seed), cluster_secret=b"x" * 20)
    assert seed_cluster_id(other_secret) != expected


async def test_a_blank_node_joins_adopts_the_cluster_id_and_becomes_a_voter(
    nodes: Nodes,
) -> None:
    leader = await nodes.leader()
    await leader.propose(b"4")
    joiner_settings = settings(nodes.root, "d", nodes.alone("d"))
    d = await nodes.start(joiner_settings, joining=True)
    assert d.status().suffrage == "none" and d.status().cluster_id == ""
    assert read_identity(nodes.root / "d") is None  # not before a leader reached it
    _, d_raft = nodes.ports["d"]
    d_http, _ = nodes.ports["d"]
    view = await leader.add_member("d", f"{LOOPBACK}:{d_raft}", f"http://{LOOPBACK}:{d_http}")
    assert "d" in [m.node_id for m in view.members]
    await eventually(lambda: d.status().suffrage == "voter", 20, "d promoted")
    await eventually(lambda: d.status().cluster_id == leader.status().cluster_id, 20, "id")
    identity = read_identity(nodes.root / "d")
    assert identity is not None and identity.cluster_id == leader.status().cluster_id
    # d learned every member's address from the configuration, not from its config file.
    for peer in ("a", "b", "c"):
        await eventually(lambda p=peer: d.transport.reachable(p), 20, f"d linked to {peer}")  # type: ignore[misc]
    await leader.propose(b"6")
    await eventually(lambda: d.applied_index >= leader.applied_index, 20, "d applies")

    # Restarted without the joining flag (its identity is there): still a voter of the
    # cluster it joined, not a one-node cluster of its own config file.
    await nodes.stop("d")
    d = await nodes.start(joiner_settings)
    assert d.status().suffrage == "voter" and not d.status().recovering
    assert await (await nodes.leader()).propose(b"8") == 8
    await eventually(lambda: d.applied_index >= leader.applied_index, 20, "d catches up")


async def test_a_node_of_another_cluster_is_refused(nodes: Nodes) -> None:
    leader = await nodes.leader()
    # Same secret, but bootstrapped from another seed configuration: another cluster.
    x = await nodes.start(settings(nodes.root, "x", nodes.alone("x")))
    await eventually(lambda: x.is_leader, 20, "x to lead its own cluster")
    cluster_id = leader.status().cluster_id
    assert x.status().cluster_id != cluster_id
    a = nodes.running["a"]
    transport = a.transport
    assert isinstance(transport, Transport)
    _, a_raft = nodes.ports["a"]
    assert x.transport.connect_peer("a", f"{LOOPBACK}:{a_raft}")
    # While a follows a leader, a stranger is not even challenged.
    await eventually(lambda: transport.dropped["auth_failed"] >= 1, 20, "a to refuse x")
    assert transport.dropped["cluster_id_mismatch"] == 0
    # Without a leader it hears strangers out (a member added meanwhile may lead now),
    # and refuses this one for its cluster id.
    for other in ("b", "c"):
        await nodes.stop(other)
    await eventually(lambda: a.leader_id is None, 20, "a to lose its leader")
    await eventually(lambda: transport.dropped["cluster_id_mismatch"] >= 1, 20, "mismatch")
    assert not x.transport.reachable("a")
    assert "x" not in [m.node_id for m in a.membership().members]


async def test_leadership_moves_and_a_removed_member_is_unlinked(nodes: Nodes) -> None:
    leader = await nodes.leader()
    await leader.propose(b"1")
    target = next(n for n in ("a", "b", "c") if n != leader.node_id)
    node = nodes.running[target]
    await eventually(lambda: node.applied_index >= leader.applied_index, 20, "caught up")
    assert await leader.transfer_leadership(target) == target
    assert node.is_leader
    gone = next(n for n in ("a", "b", "c") if n != target)
    view = await node.remove_member(gone)
    assert [m.node_id for m in view.members] == sorted({"a", "b", "c"} - {gone})
    removed = nodes.running[gone]
    await eventually(lambda: removed.status().suffrage == "removed", 20, "removal known")
    transport = node.transport
    assert isinstance(transport, Transport)
    await eventually(lambda: gone not in transport.peers, 20, "leader to drop its link")
    await eventually(lambda: removed.transport.peers == (), 20, "removed node unlinked")
    assert await node.propose(b"2") == 2  # the two voters left commit alone


def test_a_joiner_config_of_itself_alone_gives_an_empty_bootstrap(tmp_path: Path) -> None:
    n = Nodes(tmp_path)
    joiner = replace(settings(tmp_path, "d", n.alone("d")), joining=True)
    options = node_options(joiner)
    assert options.core.voters == () and options.joining and options.cluster_id == ""
    assert options.addresses["d"].raft == str(joiner.raft)
    # Without the flag the same file bootstraps a one-node cluster of its own.
    alone = node_options(replace(joiner, joining=False))
    assert alone.core.voters == ("d",) and not alone.joining
    # Once the directory belongs to a cluster, the flag no longer matters.
    (tmp_path / "d").mkdir()
    DataDirMarks(tmp_path / "d", "d").write_identity("c0ffee")
    for flag in (True, False):
        again = node_options(replace(joiner, joining=flag))
        assert again.core.voters == () and not again.joining and again.cluster_id == "c0ffee"
