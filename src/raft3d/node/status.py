"""A point-in-time view of a node, for the HTTP layer and operators."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from raft3d.consensus.types import CoreStatus, Role
from raft3d.node.options import MemberAddress


@dataclass(frozen=True, slots=True)
class PeerInfo:
    node_id: str
    raft_addr: str  # "host:port"
    http_addr: str  # "http://host:port"
    reachable: bool
    match_index: int | None  # known on the leader only
    suffrage: str = "voter"  # "voter" | "learner"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node_id: str
    role: str  # "leader" | "follower" | "candidate"
    term: int
    leader_id: str | None
    leader_http: str | None
    commit_index: int
    applied_index: int
    last_log_index: int
    snapshot_index: int
    peers: tuple[PeerInfo, ...]
    # "voter" | "learner" | "removed" | "none" ("none": a joining node not added yet)
    suffrage: str = "voter"
    recovering: bool = False
    cluster_id: str = ""  # empty until known


@dataclass(frozen=True, slots=True)
class MemberInfo:
    node_id: str
    raft_addr: str  # "host:port" (the member's advertised raft address)
    http_addr: str  # "http://host:port" or "https://host:port"
    suffrage: str  # "voter" | "learner"
    reachable: bool  # True for the node itself; transport view otherwise
    match_index: int | None  # known on the leader (its own: last log index); None elsewhere


@dataclass(frozen=True, slots=True)
class Membership:
    config_index: int  # log index of the entry that set this configuration (0: bootstrap)
    members: tuple[MemberInfo, ...]  # voters first, then learners, each sorted by node id
    change_pending: bool  # the configuration entry is not yet committed


def node_status(
    cs: CoreStatus,
    applied_index: int,
    snapshot_index: int,
    addresses: Mapping[str, MemberAddress],
    reachable: Callable[[str], bool],
    *,
    suffrage: str = "voter",
    recovering: bool = False,
    cluster_id: str = "",
) -> NodeStatus:
    """The view of a node from its core's status and where its members are reached."""
    match = {p.node_id: p.match_index for p in cs.peers}
    leader = cs.leader_id
    leader_address = addresses.get(leader) if leader else None
    role = {Role.LEADER: "leader", Role.FOLLOWER: "follower"}.get(cs.role, "candidate")
    peers = tuple(
        PeerInfo(
            node_id=peer,
            raft_addr=addresses[peer].raft if peer in addresses else "",
            http_addr=addresses[peer].http_url if peer in addresses else "",
            reachable=reachable(peer),
            match_index=match.get(peer) if cs.role is Role.LEADER else None,
            suffrage="voter" if peer in cs.voters else "learner",
        )
        for peer in cs.voters + cs.learners
        if peer != cs.node_id
    )
    return NodeStatus(
        node_id=cs.node_id,
        role=role,
        term=cs.term,
        leader_id=leader,
        leader_http=leader_address.http_url if leader_address else None,
        commit_index=cs.commit_index,
        applied_index=applied_index,
        last_log_index=cs.last_log_index,
        snapshot_index=snapshot_index,
        peers=peers,
        suffrage=suffrage,
        recovering=recovering,
        cluster_id=cluster_id,
    )
