"""The consensus stack in real processes: three key-value nodes on loopback.

The state machine here is a trivial key-value map (tests/support/kvnode.py), so these tests
prove core, storage, transport and driver together with nothing of printers involved.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

KV_COMMAND = [sys.executable, "-m", "tests.support.kvnode"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    # Few trailing entries, so that a node that lost its data is sent a snapshot.
    raft = {"snapshot_threshold": 300, "snapshot_trailing_entries": 50}
    with ProcessCluster(tmp_path, 3, KV_COMMAND, raft=raft) as c:
        c.start()
        yield c
        print(c.logs())  # pytest shows captured output only when the test failed


def propose(node: NodeProcess, key: str, value: str, timeout: float = 5.0) -> tuple[int, Any]:
    code, body, _ = http_json(
        "POST", f"{node.url}/propose", {"key": key, "value": value, "timeout": timeout}, timeout + 5
    )
    return code, body


def digests(nodes: list[NodeProcess]) -> dict[str, tuple[str, int]]:
    out = {}
    for n in nodes:
        _, body, _ = http_json("GET", f"{n.url}/digest")
        out[n.node_id] = (body["digest"], body["keys"])
    return out


def wait_for_same_digest(nodes: list[NodeProcess], timeout: float = 20.0) -> str:
    def same() -> str | None:
        d = digests(nodes)
        values = set(d.values())
        return next(iter(values))[0] if len(values) == 1 else None

    return wait_until(
        same, timeout, "identical state digests on " + ", ".join(n.node_id for n in nodes)
    )


async def concurrent_proposals(
    url: str, total: int, callers: int, prefix: str
) -> list[dict[str, Any]]:
    counter = itertools.count()
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:

        async def caller() -> None:
            while (i := next(counter)) < total:
                body = {"key": f"{prefix}-{i}", "value": str(i)}
                async with session.post(f"{url}/propose", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                    results.append(await resp.json())

        await asyncio.gather(*(caller() for _ in range(callers)))
    return results


async def test_thousand_concurrent_proposals_kill_leader_restart_and_wipe(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=15)

    # 1,000 proposals from 64 concurrent callers: all complete, each with its own result.
    results = await concurrent_proposals(leader.url, 1000, 64, "a")
    assert len(results) == 1000
    assert sorted(r["key"] for r in results) == sorted(f"a-{i}" for i in range(1000))
    assert all(r["value"] == r["key"].split("-")[1] for r in results)
    assert len({r["index"] for r in results}) == 1000
    wait_for_same_digest(list(cluster.nodes.values()))

    # A follower forwards a proposal to the leader over the peer link and answers with its
    # own apply of it.
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    code, body = propose(follower, "f", "1")
    assert code == 200 and body["key"] == "f" and body["value"] == "1", body
    assert body["index"] > max(r["index"] for r in results)

    # An entry over the maximum entry size is refused up front.
    code, body = propose(leader, "big", "x" * (70 * 1024))
    assert code == 413 and "exceeds the maximum entry size" in body["message"]

    # SIGKILL the leader: a new leader commits proposals within 2 s.
    killed_at = time.monotonic()
    leader.kill()
    survivors = cluster.alive()

    def committed_through_survivor() -> bool:
        for n in survivors:
            try:
                code, _ = propose(n, "after-kill", "1", timeout=0.5)
            except OSError:
                continue
            if code == 200:
                return True
        return False

    wait_until(committed_through_survivor, 2.0, "a committed proposal within 2 s of the kill")
    failover = time.monotonic() - killed_at
    new_leader = cluster.wait_for_leader(timeout=5)
    assert new_leader is not leader
    print(f"failover took {failover * 1000:.0f} ms")
    more = await concurrent_proposals(new_leader.url, 200, 16, "b")
    assert len(more) == 200

    # The killed node restarts, rejoins as a follower and catches up.
    leader.start()
    wait_until(lambda: leader.status()["role"] == "follower", 15, "restarted node to follow")
    wait_for_same_digest(list(cluster.nodes.values()))

    # A node whose data dir is wiped after compaction catches up by InstallSnapshot.
    victim = next(n for n in cluster.nodes.values() if n is not new_leader)
    assert new_leader.status()["snapshot_index"] > 0, "leader should have compacted by now"
    victim.kill()
    shutil.rmtree(victim.data_dir)
    victim.start()
    final = wait_for_same_digest(list(cluster.nodes.values()))
    status = victim.status()
    assert status["snapshot_index"] > 0, "the wiped node must have been sent a snapshot"
    assert "snapshot installed" in victim.log_path.read_text()
    assert final == wait_for_same_digest(list(cluster.nodes.values()))
    _, body, _ = http_json("GET", f"{victim.url}/value/a-999")
    assert body == {"value": "999"}


def test_proposal_without_quorum_fails_outcome_unknown_instead_of_hanging(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    code, _ = propose(leader, "k", "v")
    assert code == 200
    for n in cluster.nodes.values():
        if n is not leader:
            n.kill()
    started = time.monotonic()
    code, body = propose(leader, "lost", "v", timeout=30.0)
    # The leader steps down (check-quorum) and the pending proposal fails explicitly, long
    # before its 30 s deadline.
    assert (code, body) == (503, {"error": "outcome_unknown"})
    assert time.monotonic() - started < 30.0
    wait_until(lambda: leader.status()["role"] != "leader", 5, "the isolated leader to step down")
