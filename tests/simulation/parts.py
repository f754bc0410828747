"""What the parts of the simulated cluster share: ``harness.Cluster`` (nodes, the driver loop,
clients) combines ``faults.Faults`` and ``ending.Ending``, owns the state (its ``__init__``
sets every attribute declared here) and implements the methods one part calls on another."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from raft3d.consensus import NodeId

from .checker import SafetyChecker
from .membership import MembershipNemesis
from .network import NetworkWeather, SimNetwork
from .sim_config import SimConfig
from .sim_node import SimNode
from .workload import Workload

if TYPE_CHECKING:
    from .harness import CoreFactory, StorageFactory


class ClusterParts:
    cfg: SimConfig
    rng: random.Random
    nodes: dict[NodeId, SimNode]
    network: SimNetwork
    weather: NetworkWeather
    checker: SafetyChecker
    membership: MembershipNemesis | None
    workload: Workload
    now: int
    crashes: int
    wipes: int
    snapshots_installed: int
    _node_list: list[SimNode]
    _core_factory: CoreFactory
    _storage_factory: StorageFactory
    _wipe_rng: random.Random
    _partition_held_until: int
    _faults_on: bool

    if TYPE_CHECKING:  # implemented by harness.Cluster or by another part

        def _log(self, text: str) -> None:
            raise NotImplementedError

        def _start(self, node: SimNode) -> None:
            raise NotImplementedError

        def _tick(self, node: SimNode) -> None:
            raise NotImplementedError

        def _after_input(self, node: SimNode) -> None:
            raise NotImplementedError

        def _wake(self, node: SimNode) -> None:
            raise NotImplementedError

        def drive(self, node: SimNode) -> None:
            raise NotImplementedError

        def propose(self, node: SimNode, payload: bytes | None = None) -> tuple[int, int] | None:
            raise NotImplementedError

        def restart(self, node: SimNode) -> None:
            raise NotImplementedError
