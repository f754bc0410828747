"""The event log across a real three-node cluster that snapshots often (issue 8, item 2):
every retained index reads the same on every node, with its outcome, through snapshots,
restarts and snapshot installs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

RAFT = {"snapshot_threshold": 25, "snapshot_trailing_entries": 20, "snapshot_log_ratio": 0.0}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3, raft=RAFT) as c:
        c.start()
        yield c
        print(c.logs())  # shown only when the test failed


def write_printers(leader: NodeProcess, first: int, count: int) -> int:
    """Create printers p<first>..; every third one is sent twice (a refused duplicate)."""
    last = 0
    for n in range(first, first + count):
        body = {"id": f"p{n}", "company": "Prusa", "model": "MK4"}
        code, answer, headers = http_json("POST", f"{leader.url}/api/v1/printers", body)
        assert code == 201, answer
        if n % 3 == 0:
            code, answer, headers = http_json("POST", f"{leader.url}/api/v1/printers", body)
            assert code == 409, answer
        last = int(headers["X-Raft3D-Applied-Index"])
    return last


def retained_events(node: NodeProcess) -> tuple[int, dict[int, Any]]:
    """(first_index, index -> event) of every event the node holds."""
    code, page, _ = http_json("GET", f"{node.url}/api/v1/events?consistency=local&limit=1")
    if code == 410:  # compacted: the answer says where the retained log starts
        assert page["error"]["code"] == "compacted", page
        first = page["error"]["details"]["first_index"]
    else:
        assert code == 200, page
        first = page["first_index"]
    after = first - 1
    events: dict[int, Any] = {}
    while True:
        url = f"{node.url}/api/v1/events?consistency=local&limit=1000&after={after}"
        code, page, _ = http_json("GET", url)
        assert code == 200, page
        if not page["events"]:
            return first, events
        for event in page["events"]:
            events[event["index"]] = event
        after = page["events"][-1]["index"]


def check_agreement(cluster: ProcessCluster) -> dict[str, tuple[int, dict[int, Any]]]:
    held = {n.node_id: retained_events(n) for n in cluster.alive()}
    for node_id, (first, events) in held.items():
        assert events, node_id
        assert min(events) == first, node_id
        missing = [i for i, e in events.items() if e["type"] != "noop" and e["outcome"] is None]
        assert not missing, f"{node_id}: committed commands without an outcome: {missing}"
    reference: dict[int, Any] = {}
    for _, events in held.values():
        for index, event in events.items():
            assert reference.setdefault(index, event) == event, f"index {index} differs"
    return held


def test_every_node_gives_every_retained_index_the_same_outcome(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    last = write_printers(leader, 0, 60)  # 80 entries: three snapshots on every node
    cluster.wait_for_applied(last, timeout=15)
    held = check_agreement(cluster)
    for node_id, (first, _) in held.items():
        status = next(n for n in cluster.alive() if n.node_id == node_id).status()
        assert status["snapshot_index"] >= 50, node_id  # it did compact...
        assert first <= status["snapshot_index"] - 19, node_id  # ...keeping 20 entries

    # A follower restarted from its snapshot still reports the outcomes of its trailing entries.
    follower = next(n for n in cluster.alive() if n is not leader)
    follower.kill()
    follower.start()
    wait_until(lambda: follower.status()["applied_index"] >= last, 15, "the restart to catch up")
    before = held[follower.node_id][1]
    after = retained_events(follower)[1]
    assert {i: e for i, e in after.items() if i in before} == before
    check_agreement(cluster)


def test_a_follower_that_installs_a_snapshot_reports_outcomes_for_what_follows(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    follower = next(n for n in cluster.alive() if n is not leader)
    follower.kill()
    last = write_printers(leader, 0, 60)  # the leader compacts past what the follower holds
    follower.start()
    wait_until(lambda: follower.status()["applied_index"] >= last, 20, "the follower to catch up")
    last = write_printers(leader, 100, 5)
    cluster.wait_for_applied(last, timeout=15)
    held = check_agreement(cluster)
    assert max(held[follower.node_id][1]) == last
