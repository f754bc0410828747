"""The node driver on its in-memory twins: several real drivers in one event loop, with no
disk and no sockets, so leadership changes and restarts take milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator

import pytest

from raft3d.consensus.types import SnapshotData
from raft3d.node.errors import NotLeaderError, OutcomeUnknownError
from raft3d.node.memory import MemoryStorage
from tests.support.machines import EagerCapture, KeptOutcomes
from tests.support.memcluster import MemoryCluster
from tests.support.waiting import eventually


class Counter(KeptOutcomes[int]):
    """Adds each command's length; ``apply`` returns the running total."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def apply(self, index: int, data: bytes) -> int:
        self.total += len(data)
        return self.keep(index, self.total)

    def capture(self) -> EagerCapture:
        return EagerCapture(self.snapshot())

    def snapshot(self) -> bytes:
        return str(self.total).encode()

    def restore(self, data: bytes) -> None:
        self.total = int(data)

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # one step: a small state
        self.restore(data[0 : len(data)])


def counter(cluster: MemoryCluster[int], node_id: str) -> Counter:
    machine = cluster.machines[node_id]
    assert isinstance(machine, Counter)
    return machine


@pytest.fixture
async def cluster() -> AsyncIterator[MemoryCluster[int]]:
    c: MemoryCluster[int] = MemoryCluster({n: Counter() for n in ("a", "b", "c")})
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def test_three_memory_nodes_elect_a_leader_and_replicate(
    cluster: MemoryCluster[int],
) -> None:
    leader = await cluster.leader()
    assert await leader.propose(b"abc") == 3
    assert await leader.propose(b"de") == 5
    index = leader.applied_index
    nodes = list(cluster.nodes.values())
    await eventually(lambda: all(n.applied_index >= index for n in nodes), 5, "all to apply")
    assert [counter(cluster, n).total for n in cluster.voters] == [5, 5, 5]
    follower = next(n for n in cluster.nodes.values() if not n.is_leader)
    with pytest.raises(NotLeaderError) as caught:
        await follower.propose(b"x")
    assert caught.value.leader_id == leader.node_id


async def test_a_follower_read_barrier_covers_the_leaders_writes(
    cluster: MemoryCluster[int],
) -> None:
    leader = await cluster.leader()
    await leader.propose(b"abcd")
    follower = next(n for n in cluster.nodes.values() if not n.is_leader)
    await follower.read_barrier(5.0)
    assert counter(cluster, follower.node_id).total == 4  # the leader's write is applied here


async def test_a_leader_cut_off_fails_its_proposal_as_outcome_unknown(
    cluster: MemoryCluster[int],
) -> None:
    leader = await cluster.leader()
    others = [n for n in cluster.voters if n != leader.node_id]
    for other in others:
        cluster.network.cut(leader.node_id, other)
    with pytest.raises(OutcomeUnknownError):
        await leader.propose(b"lost?", 5.0)
    assert leader.counters.proposals["outcome_unknown"] == 1
    for other in others:
        cluster.network.heal(leader.node_id, other)
    new_leader = await cluster.leader()
    assert await new_leader.propose(b"ok") >= 2


async def test_a_restarted_memory_node_recovers_from_its_storage() -> None:
    c: MemoryCluster[int] = MemoryCluster({"solo": Counter()}, snapshot_threshold=3)
    await c.start()
    try:
        node = await c.leader()
        for data in (b"a", b"bb", b"ccc", b"dddd"):
            await node.propose(data)
        # The threshold took one (saved beside the loop: poll for it).
        await eventually(lambda: bool(node.snapshots()), 5, "the threshold's snapshot")
        applied = node.applied_index
    finally:
        await c.stop()
    storage = c.storages["solo"]
    assert isinstance(storage, MemoryStorage) and storage.closed
    c.machines["solo"] = Counter()
    again = c.build("solo")
    await again.start()
    try:
        await eventually(lambda: again.applied_index >= applied, 5, "the log to replay")
        assert counter(c, "solo").total == 10
    finally:
        await again.stop()


async def test_stop_fails_waiting_reads_and_proposals() -> None:
    c: MemoryCluster[int] = MemoryCluster({n: Counter() for n in ("a", "b", "c")})
    node = c.build("a")
    await node.start()  # alone: no leader will ever confirm the read
    read = asyncio.create_task(node.read_barrier(30.0))
    await eventually(lambda: len(node.step.reads) == 1, 5, "the read to be queued")
    await node.stop()
    with pytest.raises(Exception, match="stopping"):
        await read
