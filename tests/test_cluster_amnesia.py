"""A voter that lost its disk must not help elect a leader that lacks acknowledged writes.

The scenario of issue 7, in real ``raft3d serve`` processes: with C down, write W is
acknowledged by A and B; A is stopped and B killed; A loses its log (``raft.db`` emptied, or
its whole data directory wiped); A and C start. A must not vote (it forgot what it
acknowledged) until a leader has brought it up to date: C, which lacks W, must not lead.
Once B is back, W is on every node.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

API = "/api/v1"
W = {"id": "w", "company": "Prusa", "model": "MK4"}
# Short timers, so the window in which a wrong leader would appear spans many elections.
RAFT = {"tick_ms": 5, "heartbeat_ms": 25, "election_timeout_ms": 150}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3, raft=RAFT) as c:
        c.start()
        yield c
        print(c.logs())  # shown only when the test failed


def empty_raft_db(node: NodeProcess) -> None:
    for name in ("raft.db", "raft.db-wal", "raft.db-shm"):
        path = node.data_dir / name
        if path.exists():
            path.write_bytes(b"")


def wipe_data_dir(node: NodeProcess) -> None:
    shutil.rmtree(node.data_dir)


def read_w(node: NodeProcess, consistency: str) -> int:
    code, _, _ = http_json(
        "GET", f"{node.url}{API}/printers/w?consistency={consistency}", timeout=3
    )
    return code


def status_or_none(node: NodeProcess) -> dict[str, object] | None:
    try:
        return node.status()
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize("lose", [empty_raft_db, wipe_data_dir], ids=["raft_db", "data_dir"])
def test_a_voter_that_lost_its_log_does_not_elect_a_leader_without_w(
    cluster: ProcessCluster, lose: Callable[[NodeProcess], None]
) -> None:
    a, b, c = (cluster.nodes[n] for n in ("n1", "n2", "n3"))
    cluster.wait_for_leader(timeout=20)
    # A node slower than the others to start finds the cluster formed and catches up first.
    for node in (a, b, c):
        wait_until(
            lambda n=node: n.status().get("recovering") is not True,  # type: ignore[misc]
            20,
            "a healthy cluster",
        )
    assert c.terminate() == 0
    leader = cluster.wait_for_leader(timeout=20, among=[a, b])
    code, body, _ = http_json("POST", f"{leader.url}{API}/printers", W, timeout=10)
    assert (code, body) == (201, W)
    assert a.terminate() == 0
    b.kill()
    lose(a)

    a.start()
    c.start()
    wait_until(lambda: status_or_none(a) is not None, 20, "A to serve its status")
    wait_until(lambda: status_or_none(c) is not None, 20, "C to serve its status")
    # For many election timeouts: whoever leads (nobody should) must hold W.
    deadline = time.monotonic() + 3.0
    leaders_seen = set()
    while time.monotonic() < deadline:
        for node in (a, c):
            status = status_or_none(node)
            if status is not None and status["role"] == "leader":
                leaders_seen.add(node.node_id)
                assert read_w(node, "local") == 200, f"{node.node_id} leads without W"
        time.sleep(0.05)  # polling interval
    assert leaders_seen == set()
    a_status = a.status()
    assert a_status["recovering"] is True and a_status["role"] == "follower"
    assert (a.data_dir / "recovering").exists()

    b.start()
    cluster.wait_for_leader(timeout=30)
    for node in (a, b, c):
        wait_until(lambda n=node: read_w(n, "local") == 200, 30, f"W on {node.node_id}")  # type: ignore[misc]
    wait_until(lambda: a.status()["recovering"] is False, 30, "A to finish recovering")
    assert not (a.data_dir / "recovering").exists()
    assert a.status()["suffrage"] == "voter"
    assert (a.data_dir / "identity.json").exists()
