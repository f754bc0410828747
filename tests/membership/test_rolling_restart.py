"""A rolling restart of every node, moving leadership away before the leader stops, while a
client writes continuously: nothing acknowledged is lost, and every retried write (same
``Idempotency-Key``) ends acknowledged."""

from __future__ import annotations

from pathlib import Path

from tests.support.membership import Writer, caught_up, printer_ids, transfer_leadership
from tests.support.procs import ProcessCluster, wait_until


def test_rolling_restart_with_leadership_transfer_under_writes(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, 3, raft={"snapshot_threshold": 200}) as cluster:
        cluster.start()
        try:
            cluster.wait_for_leader(timeout=15)
            with Writer(lambda: [n.url for n in cluster.alive()]) as writer:
                writer.wait_for_more(30)
                for node in list(cluster.nodes.values()):
                    leader = cluster.wait_for_leader(timeout=15)
                    if node is leader:
                        code, reply = transfer_leadership(node)
                        assert code == 200, reply
                        assert reply["leader_id"] != node.node_id
                        wait_until(
                            lambda n=node: n.status()["role"] == "follower",  # type: ignore[misc]
                            10,
                            f"{node.node_id} to step down",
                        )
                    assert node.terminate() == 0, node.log_tail()
                    writer.wait_for_more(10)  # two nodes keep the cluster writing
                    node.start()
                    wait_until(
                        lambda n=node: n.status()["role"] == "follower",  # type: ignore[misc]
                        20,
                        f"{node.node_id} to rejoin as a follower",
                    )
                    caught_up(cluster.alive())
                    writer.wait_for_more(10)
                stats = writer.stop()
            print(f"rolling restart: {stats.summary()}")
            assert stats.acked and not stats.refused and not stats.lost, stats.summary()
            caught_up(cluster.alive())
            acked = set(stats.acked)
            for node in cluster.alive():
                missing = acked - printer_ids(node)
                assert not missing, f"{node.node_id} lacks {len(missing)} acknowledged writes"
        except BaseException:
            print(cluster.logs())
            raise
