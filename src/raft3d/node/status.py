"""A point-in-time view of a node, for the HTTP layer and operators."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerInfo:
    node_id: str
    raft_addr: str  # "host:port"
    http_addr: str  # "http://host:port"
    reachable: bool
    match_index: int | None  # known on the leader only


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
