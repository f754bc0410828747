"""The end of a simulated run: every fault healed, the cluster must elect a leader and
apply a fresh write on every member in bounded virtual time (``heal_and_check_liveness``),
the replicas must agree, and the run is summed up (``SimResult``). ``harness.Cluster``
combines this part with the driver loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raft3d.consensus import NodeId, Role

from .checker import InvariantViolation
from .parts import ClusterParts
from .sim_config import SimConfig
from .sim_node import SimNode


class LivenessViolation(AssertionError):
    """After all faults healed, the cluster did not elect a leader and commit in time."""


@dataclass
class SimResult:
    seed: int
    nodes: int
    steps: int
    ticks: int
    leaders: int
    committed: int
    applied_everywhere: int
    acknowledged_writes: int
    reads_released: int
    messages: int
    crashes: int
    snapshots_installed: int
    wipes: int = 0  # restarts with a lost data directory
    conf_changes: int = 0  # membership changes the leaders accepted
    transfers: int = 0  # leadership transfers started
    final_members: tuple[NodeId, ...] = ()
    notes: list[str] = field(default_factory=list)


class Ending(ClusterParts):
    """The end-of-run part of ``harness.Cluster`` (see ``parts``)."""

    def heal_and_check_liveness(self, bound_ticks: int) -> int:
        """Stop every fault, then require a leader and a fresh write applied on every node
        within ``bound_ticks`` (plus the time a snapshot transfer needs, when the state is
        big and the chunks small, and for the entries still to replicate). Returns the ticks it
        took."""
        self._faults_on = False
        self.network.heal()
        self.weather.drop_rate = 0.0
        self.weather.dup_rate = 0.0
        self.weather.max_delay = 1
        for node in self._node_list:
            if node.core is None:
                self.restart(node)
        # A laggard may need a whole snapshot, one chunk per round trip, and every entry
        # behind, in the worst configuration one entry per round trip (two ticks).
        largest = max(len(n.sm.snapshot_bytes()) for n in self._node_list)
        bound_ticks += 8 * (largest // self.cfg.chunk_bytes + 1)
        backlog = max(n.live_core().last_index for n in self._node_list) - min(
            n.live_core().applied_index for n in self._node_list
        )
        bound_ticks += 4 * backlog
        start = self.now
        marker: tuple[SimNode, int, int] | None = None
        self._log("HEALED: waiting for a leader and a commit")
        while self.now - start < bound_ticks:
            self._quiet_step()
            leaders = [n for n in self._node_list if n.live_core().role is Role.LEADER]
            if marker is not None:
                node, index, term = marker
                # Every member of the leader's configuration; removed nodes are left behind.
                members = [self.nodes[m] for m in node.live_core().conf_state.members]
                # A member that lost its data directory must also have recovered.
                if all(
                    n.live_core().applied_index >= index
                    and n.sm.terms[index - 1] == term
                    and not n.live_core().recovering
                    for n in members
                ):
                    self._check_replicas_agree()
                    return self.now - start
                if node.live_core().role is not Role.LEADER or node.live_core().term != term:
                    marker = None  # that leader is gone; its marker may never commit
            if marker is None and leaders:
                leader = max(leaders, key=lambda n: n.live_core().term)
                placed = self.propose(leader, b"marker")
                if placed is not None:
                    marker = (leader, placed[0], placed[1])
        recovering = [n.node_id for n in self._node_list if n.live_core().recovering]
        raise LivenessViolation(
            f"no leader committed a new write on every node within {bound_ticks} ticks "
            f"after healing (roles: {self._roles()}; recovering: {recovering})"
        )

    def _quiet_step(self) -> None:
        """A step without faults or client traffic."""
        self.now += 1
        for node in self._node_list:
            node.live_core()
            self._tick(node)
        for msg in self.network.due(self.now):
            node = self.nodes[msg.to]
            node.live_core().step(msg)
            self._after_input(node)
        for node in self._node_list:
            self._wake(node)
            self.drive(node)
        self.checker.end_of_step()

    def _check_replicas_agree(self) -> None:
        by_index: dict[int, str] = {}
        for node in self._node_list:
            digest = by_index.setdefault(node.sm.applied_index, node.sm.digest())
            if digest != node.sm.digest():
                raise InvariantViolation(f"{node.node_id}: state digest differs at same index")

    def _roles(self) -> str:
        parts = []
        for node in self._node_list:
            core = node.core
            if core is None:
                parts.append(f"{node.node_id}=down")
            else:
                parts.append(
                    f"{node.node_id}={core.role.value}/t{core.term}/c{core.commit_index}"
                    f"/l{core.last_index}"
                )
        return " ".join(parts)

    def result(self) -> SimResult:
        applied = min((n.sm.applied_index for n in self._node_list), default=0)
        return SimResult(
            seed=self.cfg.seed,
            nodes=self.cfg.nodes,
            steps=self.cfg.steps,
            ticks=self.now,
            leaders=len(self.checker.leaders),
            committed=len(self.checker.ledger_terms),
            applied_everywhere=applied,
            acknowledged_writes=self.workload.acknowledged,
            reads_released=self.workload.reads_released,
            messages=self.network.sent,
            crashes=self.crashes,
            wipes=self.wipes,
            snapshots_installed=self.snapshots_installed,
            conf_changes=self.membership.proposed if self.membership else 0,
            transfers=self.membership.transfers if self.membership else 0,
            final_members=self._final_members(),
        )

    def _final_members(self) -> tuple[NodeId, ...]:
        leaders = [n.live_core() for n in self._node_list if n.core and n.core.role is Role.LEADER]
        if not leaders:
            return ()
        return max(leaders, key=lambda core: core.term).conf_state.members


def liveness_bound(cfg: SimConfig) -> int:
    """Virtual time allowed after healing: a few election rounds plus catch-up."""
    return 40 * cfg.election_ticks + 200
