"""Membership changes as a nemesis: nodes join as learners, are promoted, removed, and
leadership moves, all at random moments and on top of the harness's other faults.

A node that joins is a brand-new process with an empty disk and no configuration: it waits
for a leader to reach it. A removed node keeps running (and crashing and restarting) until
the end of the run; the checker and the liveness check make sure it cannot disrupt anyone.
The cluster's size stays between 3 and 7 members; node ids are never reused.

Every choice comes from the nemesis's own random stream, so a run without membership changes
plays out exactly as before this nemesis existed.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from raft3d.consensus import NodeId, RaftError, Role
from raft3d.consensus.membership import ConfChange, ConfChangeType

if TYPE_CHECKING:
    from .harness import Cluster
    from .sim_node import SimNode

MIN_MEMBERS = 3
MAX_MEMBERS = 7
MAX_NODES = 10  # processes ever started in one run (removed ones keep running)


class MembershipNemesis:
    def __init__(self, cluster: Cluster, seed: int, rate: float) -> None:
        self._cluster = cluster
        self._rng = random.Random(seed * 104729 + 17)
        self.rate = rate
        self._next_id = len(cluster.nodes) + 1
        self._seen_term: dict[NodeId, int] = {}
        self.proposed = 0
        self.refused = 0
        self.transfers = 0

    def step(self) -> None:
        rng = self._rng
        for node in self._new_leaders():
            # Right after an election is when the own-term-commit rule matters.
            if rng.random() < 0.3:
                self._change(node)
        if rng.random() >= self.rate:
            return
        live = [n for n in self._cluster.nodes.values() if n.core is not None]
        if not live:
            return
        leaders = [n for n in live if n.live_core().role is Role.LEADER]
        node = rng.choice(leaders) if leaders and rng.random() < 0.85 else rng.choice(live)
        if rng.random() < 0.2:
            self._transfer(node)
            return
        self._change(node)
        if rng.random() < 0.25:
            self._change(node)  # a second change while the first is in flight

    def _new_leaders(self) -> list[SimNode]:
        found = []
        for node in self._cluster.nodes.values():
            core = node.core
            if core is None or core.role is not Role.LEADER:
                continue
            if self._seen_term.get(node.node_id, 0) < core.term:
                self._seen_term[node.node_id] = core.term
                found.append(node)
        return found

    def _change(self, node: SimNode) -> None:
        core = node.live_core()
        conf = core.conf_state
        rng = self._rng
        members = len(conf.members)
        choices: list[str] = []
        if members < MAX_MEMBERS and self._next_id <= MAX_NODES:
            choices += ["add"] * 3
        if (members > MIN_MEMBERS or (conf.learners and len(conf.voters) >= MIN_MEMBERS)) and (
            not self._cluster.recovering()
        ):
            # No removals while a node recovers from a lost disk: with fewer voters, those
            # still without their data might be too many for a quorum of intact ones.
            choices += ["remove"] * 2
        if conf.manual:
            choices.append("promote")
        choices.append("junk")  # a change that cannot fit the configuration
        kind = rng.choice(choices)
        if kind == "add":
            new_id = f"n{self._next_id}"
            change = ConfChange(ConfChangeType.ADD_LEARNER, new_id, rng.random() < 0.8)
        elif kind == "remove":
            victims = list(conf.learners) if len(conf.voters) <= MIN_MEMBERS else conf.members
            change = ConfChange(ConfChangeType.REMOVE, rng.choice(list(victims)))
        elif kind == "promote":
            change = ConfChange(ConfChangeType.PROMOTE, rng.choice(list(conf.manual)))
        else:
            voter = rng.choice(list(conf.voters) or [node.node_id])
            change = rng.choice(
                [
                    ConfChange(ConfChangeType.ADD_LEARNER, voter),
                    ConfChange(ConfChangeType.PROMOTE, voter),
                    ConfChange(ConfChangeType.REMOVE, "n99"),
                ]
            )
        try:
            self._cluster.propose_conf_change(node, change)
        except RaftError:
            self.refused += 1
            return
        self.proposed += 1
        if kind == "add":
            self._next_id += 1
            self._cluster.add_node(change.node_id)

    def _transfer(self, node: SimNode) -> None:
        core = node.live_core()
        others = [v for v in core.conf_state.voters if v != node.node_id]
        if not others:
            return
        target = self._rng.choice(others)
        try:
            core.transfer_leadership(target)
        except RaftError:
            self.refused += 1
            return
        self.transfers += 1
        self._cluster.after_input(node)
