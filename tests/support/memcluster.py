"""Real node drivers on in-memory storage and an in-memory network, in the test's loop."""

from __future__ import annotations

import random
from typing import Generic, TypeVar

from raft3d.node.driver import RaftNode
from raft3d.node.memory import MemoryNetwork, MemoryStorage
from raft3d.node.options import NodeOptions
from raft3d.node.seams import StateMachine
from raft3d.node.wiring import core_config
from tests.support.settings import FAST_RAFT
from tests.support.waiting import eventually

R = TypeVar("R")


class MemoryCluster(Generic[R]):
    def __init__(self, machines: dict[str, StateMachine[R]], snapshot_threshold: int = 0):
        self.network = MemoryNetwork()
        self.voters = tuple(machines)
        self.machines = machines
        self.storages = {node_id: MemoryStorage() for node_id in machines}
        self._threshold = snapshot_threshold
        self.nodes: dict[str, RaftNode[R]] = {}

    def build(self, node_id: str, seed: int = 0) -> RaftNode[R]:
        """A node on ``node_id``'s storage (kept across restarts)."""
        options = NodeOptions(
            core=core_config(node_id, self.voters, FAST_RAFT),
            tick_s=FAST_RAFT.tick_ms / 1000,
            snapshot_threshold=self._threshold,
            default_timeout_s=5.0,
        )
        transport = self.network.transport(
            node_id, lambda msg: node.receive(msg), lambda peer, up: node.peer_changed(peer, up)
        )
        node = RaftNode(
            options,
            self.storages[node_id],
            transport,
            self.machines[node_id],
            rng=random.Random(seed),
        )
        self.nodes[node_id] = node
        return node

    async def start(self) -> None:
        for k, node_id in enumerate(self.voters):
            await self.build(node_id, seed=k).start()

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.stop()

    async def leader(self, timeout: float = 10.0) -> RaftNode[R]:
        def one_leader() -> bool:
            return sum(1 for n in self.nodes.values() if n.is_leader and not n.halted) == 1

        await eventually(one_leader, timeout, "one leader")
        return next(n for n in self.nodes.values() if n.is_leader)
