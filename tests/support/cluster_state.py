"""What a key-value test cluster looks like from outside: each node's role, term, indexes and
state digest, whether all agree, and its transport's drop counters (for the hostile-bytes
tests of ``tests/test_cluster_hostile.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raft3d.transport import stats
from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

Drops = dict[str, int]


@dataclass(frozen=True)
class NodeState:
    role: str
    leader_id: str | None
    term: int
    commit_index: int
    applied_index: int
    last_log_index: int
    digest: str


def node_state(node: NodeProcess) -> NodeState:
    status = node.status()
    code, body, _ = http_json("GET", f"{node.url}/digest", timeout=1.0)
    if code != 200:
        raise ValueError(f"digest {code}")
    return NodeState(
        status["role"],
        status["leader_id"],
        status["term"],
        status["commit_index"],
        status["applied_index"],
        status["last_log_index"],
        body["digest"],
    )


def node_states(cluster: ProcessCluster) -> dict[str, NodeState]:
    return {n.node_id: node_state(n) for n in cluster.nodes.values()}


def is_settled(states: Mapping[str, NodeState]) -> bool:
    """One leader agreed on by all, and every log and state machine the same."""
    leaders = [nid for nid, s in states.items() if s.role == "leader"]
    views = {
        (s.leader_id, s.term, s.commit_index, s.applied_index, s.last_log_index, s.digest)
        for s in states.values()
    }
    return len(leaders) == 1 and len(views) == 1 and states[leaders[0]].leader_id == leaders[0]


def wait_settled(cluster: ProcessCluster) -> dict[str, NodeState]:
    last: list[dict[str, NodeState]] = []

    def settled() -> dict[str, NodeState] | None:
        last[:] = [node_states(cluster)]
        return last[0] if is_settled(last[0]) else None

    try:
        return wait_until(settled, 20, "a settled cluster")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {last}") from None


def dropped(node: NodeProcess) -> Drops:
    counters: Drops = node.status(timeout=5.0)["dropped"]
    assert set(stats.DROP_REASONS) <= set(counters), counters
    return counters


def changes(before: Mapping[str, int], after: Mapping[str, int]) -> Drops:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def add(total: Drops, more: Mapping[str, int]) -> None:
    for reason, count in more.items():
        total[reason] = total.get(reason, 0) + count


def propose(node: NodeProcess, key: str, value: str) -> dict[str, Any]:
    code, body, _ = http_json("POST", f"{node.url}/propose", {"key": key, "value": value}, 10)
    assert code == 200, body
    assert isinstance(body, dict)
    return body
