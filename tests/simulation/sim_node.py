"""One simulated server: durable storage that survives crashes, and the volatile rest."""

from __future__ import annotations

from dataclasses import dataclass, field

from raft3d.consensus import Message, NodeId, RaftCore, Ready

from .state_machine import SimStateMachine
from .storage import MemoryStorage


@dataclass
class SimNode:
    node_id: NodeId
    storage: MemoryStorage
    bootstrap: tuple[NodeId, ...] = ()  # voters of a new cluster; () for a node that joins
    core: RaftCore | None = None  # None while crashed
    sm: SimStateMachine = field(default_factory=SimStateMachine)
    pending: Ready | None = None  # a Ready whose persist has not finished ("slow disk")
    unsent: list[Message] = field(default_factory=list)  # pending's messages still to send
    incarnation: int = 0
    led_term: int = 0  # newest term this node was seen leading
    disk_slowness: float = 0.0  # chance a persist is still running when the driver looks

    @property
    def alive(self) -> bool:
        return self.core is not None

    def live_core(self) -> RaftCore:
        if self.core is None:
            raise AssertionError(f"{self.node_id} is down")
        return self.core
