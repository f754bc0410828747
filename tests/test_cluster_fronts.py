"""HTTP fronts in real node processes (``[http] workers``): a 3-node cluster whose nodes each
run fronts on their client port answers as it does without them, the connections really land
on the fronts, and the fronts die with their node."""

from __future__ import annotations

import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

PRINTER = {"company": "Creality", "model": "Ender 3"}
# Connections a client opens to reach every process behind a port at least once, with a
# margin: the kernel picks a listener per connection (SO_REUSEPORT hashes the 4-tuple).
TRIES = 40


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def fronts_of(node: NodeProcess, count: int) -> list[int]:
    assert node.proc is not None
    pid = node.proc.pid
    return wait_until(
        lambda: kids if len(kids := children(pid)) == count else None,
        20,
        f"{count} fronts of {node.node_id}",
    )


def listening_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A" and fields[9] in inodes:
                return True
    return False


def front_served(node: NodeProcess, how: str = "") -> float:
    """Requests that came in through the node's fronts (``how``: served or relayed only)."""
    with urllib.request.urlopen(f"{node.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("raft3d_front_requests_total{") and f'how="{how}' in line
    )


def write_until_fronts_serve(node: NodeProcess, prefix: str) -> None:
    """Send writes on new connections until the node's /metrics counts some a front answered
    (a front starts listening a moment after its node)."""
    sent = 0

    def served() -> bool:
        nonlocal sent
        sent += 1
        code, _, _ = http_json(
            "POST", f"{node.url}/api/v1/printers", {**PRINTER, "id": f"{prefix}{sent}"}
        )
        assert code == 201
        return front_served(node) > 0

    wait_until(served, 30, f"requests answered by a front of {node.node_id}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3, tables={"http": {"workers": 1}}) as c:
        c.start()
        yield c


@pytest.mark.parametrize("node_listens", [True, False])
def test_through_fronts_the_api_answers_as_without_them(tmp_path: Path, node_listens: bool) -> None:
    http = {"workers": 1, "node_listens": node_listens}
    with ProcessCluster(tmp_path, 3, tables={"http": http}) as cluster:
        cluster.start()
        _answers_as_without_fronts(cluster)
        for node in cluster.alive():
            assert node.proc is not None
            [front] = fronts_of(node, 1)
            assert listening_on(front, node.http_port)
            # node_listens = false: only the fronts accept client connections
            assert listening_on(node.proc.pid, node.http_port) is node_listens


def _answers_as_without_fronts(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader(timeout=20)
    followers = [n for n in cluster.alive() if n is not leader]
    for node in cluster.alive():
        fronts_of(node, 1)
        write_until_fronts_serve(node, f"warm-{node.node_id}-")
    for i in range(TRIES):
        node = (leader, *followers)[i % 3]
        # a write, to any node, then read back linearizably from every node
        code, created, headers = http_json(
            "POST", f"{node.url}/api/v1/printers", {**PRINTER, "id": f"p{i}"}
        )
        assert (code, created) == (201, {**PRINTER, "id": f"p{i}"}), headers
        assert headers["X-Raft3D-Node"] in {n.node_id for n in cluster.alive()}
        for reader in cluster.alive():
            code, got, _ = http_json("GET", f"{reader.url}/api/v1/printers/p{i}")
            assert (code, got) == (200, created)
        # a keyed write, replayed
        key = {"Idempotency-Key": f"key-{i}"}
        body = {**PRINTER, "id": f"k{i}"}
        first = http_json("POST", f"{node.url}/api/v1/printers", body, headers=key)
        again = http_json("POST", f"{node.url}/api/v1/printers", body, headers=key)
        assert (first[0], again[0], again[1]) == (201, 201, first[1])
        assert again[2].get("Idempotent-Replayed") == "true"
        assert "Idempotent-Replayed" not in first[2]
        # a 4xx, and nothing changed
        code, error, _ = http_json("POST", f"{node.url}/api/v1/printers", {"id": f"x{i}"})
        assert code == 400 and error["error"]["code"] == "invalid_body"
        assert http_json("GET", f"{node.url}/api/v1/printers/x{i}")[0] == 404
        # a relayed route
        code, status, _ = http_json("GET", f"{node.url}/cluster/status")
        assert code == 200 and status["node_id"] == node.node_id
    assert all(front_served(n) > 0 for n in cluster.alive())
    # the leader's fronts answered writes themselves, without its event loop parsing them
    assert front_served(leader, "served") > 0


def _gone(pids: list[int]) -> bool:
    return not any(running(pid) for pid in pids)


def test_a_dead_front_is_restarted_and_fronts_die_with_their_node(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=20)
    follower = next(n for n in cluster.alive() if n is not leader)
    [front] = fronts_of(follower, 1)
    os.kill(front, signal.SIGKILL)
    [again] = wait_until(
        lambda: kids if (kids := children(follower.proc.pid)) and kids != [front] else None,  # type: ignore[union-attr]
        20,
        "the killed front to be replaced",
    )
    assert again != front and running(again)
    write_until_fronts_serve(follower, "after-restart-")

    # SIGKILL of the leader: its fronts go too, and the survivors keep serving writes.
    leader_fronts = fronts_of(leader, 1)
    leader.kill()
    wait_until(lambda: _gone(leader_fronts), 20, "the killed leader's fronts to exit")
    survivors = cluster.alive()
    cluster.wait_for_leader(timeout=20, among=survivors)
    for i in range(TRIES):
        node = survivors[i % 2]
        code, _, _ = http_json("POST", f"{node.url}/api/v1/printers", {**PRINTER, "id": f"s{i}"})
        assert code == 201
        assert http_json("GET", f"{node.url}/api/v1/printers/s{i}")[0] == 200

    # SIGTERM: the node stops its fronts, then itself, and exits 0.
    node = survivors[0]
    its_fronts = fronts_of(node, 1)
    assert node.terminate() == 0
    assert _gone(its_fronts)


def test_workers_is_checked_like_every_setting(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path, 1, tables={"http": {"workers": 65}})
    node = cluster.nodes["n1"]
    node.start()
    assert node.proc is not None
    assert node.proc.wait(timeout=30) == 2
    assert "raft3d: http.workers must be between 0 and 64, got 65" in node.log_tail()
    node.args = ["--workers", "-1"]
    node.start()
    assert node.proc.wait(timeout=30) == 2
    assert "http.workers must be between 0 and 64, got -1" in node.log_tail()
