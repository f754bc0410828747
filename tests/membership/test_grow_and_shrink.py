"""A cluster grows from 3 to 5 under a write load, loses two (the leader among them), shrinks
back to 3, and replaces a wiped node with a fresh one: real ``raft3d serve`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.membership import (
    Writer,
    caught_up,
    members,
    printer_ids,
    remove_member,
    suffrages,
    wait_for_voters,
)
from tests.support.procs import NodeProcess, ProcessCluster, wait_until

# Small snapshots and no trailing entries: the leader's log is compacted long before a node
# joins, so that a joiner can only catch up by InstallSnapshot.
RAFT = {"snapshot_threshold": 40, "snapshot_trailing_entries": 0, "snapshot_log_ratio": 0.0}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3, raft=RAFT) as c:
        c.start()
        yield c
        print(c.logs())  # shown only when the test failed


def serving(cluster: ProcessCluster, ids: set[str]) -> list[str]:
    return [n.url for n in cluster.alive() if n.node_id in set(ids)]


def installed_a_snapshot(node: NodeProcess) -> bool:
    return "snapshot installed" in node.log_path.read_text(errors="replace")


def assert_all_acknowledged_everywhere(writer: Writer, nodes: list[NodeProcess]) -> None:
    stats = writer.stop()
    print(stats.summary())
    assert not stats.refused and not stats.lost, stats.summary()
    caught_up(nodes)
    acked = set(stats.acked)
    for node in nodes:
        missing = acked - printer_ids(node)
        assert not missing, f"{node.node_id} lacks {len(missing)} acknowledged writes"


def test_grow_to_five_lose_two_with_the_leader_and_shrink_back_to_three(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    targets = {"n1", "n2", "n3"}
    with Writer(lambda: serving(cluster, targets)) as writer:
        writer.wait_for_more(100)
        wait_until(lambda: leader.status()["snapshot_index"] > 0, 20, "the leader to compact")

        # Grow: one joins through the leader, one through a follower (forwarded).
        follower = next(n for n in cluster.alive() if n is not leader)
        n4 = cluster.add_node("n4", [leader.url])
        n5 = cluster.add_node("n5", [follower.url])
        n4.start()
        n5.start()
        everyone = {"n1", "n2", "n3", "n4", "n5"}
        wait_for_voters(list(cluster.nodes.values()), everyone, timeout=60)
        assert installed_a_snapshot(n4) and installed_a_snapshot(n5)
        assert members(n4)["config_index"] == members(leader)["config_index"] > 0
        targets |= {"n4", "n5"}
        writer.wait_for_more(20)

        # Lose two of five, the leader among them, and a node that joined: the three left
        # need the other joiner's vote to elect a leader and to commit.
        leader = cluster.wait_for_leader(timeout=15)
        lost = [leader, n4 if leader is not n4 else n5]
        for node in lost:
            node.kill()
        targets -= {n.node_id for n in lost}
        survivors = cluster.alive()
        new_leader = cluster.wait_for_leader(timeout=20)
        assert new_leader not in lost
        writer.wait_for_more(20)

        # Shrink: remove the dead ones, through a survivor that may not lead.
        via = next(n for n in survivors if n is not new_leader)
        for node in lost:
            code, reply = remove_member(via, node.node_id)
            assert code == 200, reply
        left = {n.node_id for n in survivors}
        wait_for_voters(survivors, left, timeout=20)
        writer.wait_for_more(20)
        assert_all_acknowledged_everywhere(writer, survivors)


def test_a_wiped_node_is_replaced_by_a_fresh_one(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    targets = {"n1", "n2", "n3"}
    with Writer(lambda: serving(cluster, targets)) as writer:
        writer.wait_for_more(60)
        victim = next(n for n in cluster.alive() if n is not leader)
        victim.kill()
        victim.wipe()
        targets.discard(victim.node_id)
        writer.wait_for_more(10)

        code, reply = remove_member(leader, victim.node_id)
        assert code == 200, reply
        assert victim.node_id not in suffrages(leader)

        fresh = cluster.add_node("n4", [leader.url])
        fresh.start()
        now = {n.node_id for n in cluster.alive()}
        assert now == {"n1", "n2", "n3", "n4"} - {victim.node_id}
        wait_for_voters(cluster.alive(), now, timeout=60)
        targets.add("n4")
        writer.wait_for_more(20)
        assert fresh.status()["suffrage"] == "voter"
        assert_all_acknowledged_everywhere(writer, cluster.alive())
