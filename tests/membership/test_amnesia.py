"""A node that lost its disk must not vote as if it had one (SPEC §1, §6).

The scenario of issue 7: with C down, a write W is acknowledged by A and B; A is stopped and
B killed; A's log is lost (``raft.db`` emptied, or the whole data dir wiped); A and C start.
A blank voter would elect C, whose log lacks W, and W would be overwritten on B when it
returns. A node that lost its log comes back in recovery: it grants no vote, so A and C
cannot elect anyone, and once B is back W is on every node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.membership import caught_up, printer_ids
from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

WINDOW_S = 3.0  # several election timeouts (300-600 ms): long enough for C to win a vote


def empty_log(node: NodeProcess) -> None:
    """``raft.db`` truncated to nothing (its WAL and shared-memory files gone too)."""
    for name in ("raft.db-wal", "raft.db-shm"):
        (node.data_dir / name).unlink(missing_ok=True)
    (node.data_dir / "raft.db").write_bytes(b"")


def wipe(node: NodeProcess) -> None:
    node.wipe()


def no_leader_for(nodes: list[NodeProcess], seconds: float) -> list[str]:
    """Roles seen while polling ``nodes`` for ``seconds``: any "leader" is a failure."""
    leaders = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # a bounded observation window, not a wait for an event
        for node in nodes:
            try:
                if node.status()["role"] == "leader":
                    leaders.append(node.node_id)
            except (OSError, ValueError):
                pass
        time.sleep(0.05)  # polling interval
    return leaders


@pytest.mark.parametrize("lose", [empty_log, wipe], ids=["empty-raft-db", "wiped-data-dir"])
def test_a_node_that_lost_its_log_does_not_vote_away_an_acknowledged_write(
    tmp_path: Path, lose: Callable[[NodeProcess], None]
) -> None:
    with ProcessCluster(tmp_path, 3) as cluster:
        cluster.start()
        try:
            a, b, c = (cluster.nodes[n] for n in ("n1", "n2", "n3"))
            cluster.wait_for_leader(timeout=15)
            c.kill()
            leader = cluster.wait_for_leader(timeout=15)
            w = {"id": "W", "company": "Creality", "model": "Ender 3"}
            code, body, _ = http_json("POST", f"{leader.url}/api/v1/printers", w, timeout=10)
            assert code == 201, body
            assert a.terminate() == 0
            b.kill()
            lose(a)

            a.start()
            c.start()
            wait_until(lambda: a.status()["recovering"] is True, 20, "A to be recovering")
            assert no_leader_for([a, c], WINDOW_S) == [], "A voted although it lost its log"

            b.start()
            cluster.wait_for_leader(timeout=20)
            wait_until(lambda: a.status()["recovering"] is False, 30, "A to finish recovery")
            caught_up(cluster.alive())
            for node in cluster.alive():
                assert "W" in printer_ids(node), f"{node.node_id} lost the acknowledged write"
            assert a.status()["suffrage"] == "voter"
        except BaseException:
            print(cluster.logs())
            raise
