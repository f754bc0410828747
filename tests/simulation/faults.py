"""The fault model of the simulated cluster: crashes and restarts (some with the whole data
directory lost), links that break, partitions, new leaders cut off at once, and the network's
changing weather. Every fault is struck from the run's random streams, so a seed replays
them exactly. ``harness.Cluster`` combines this part with the driver loop.
"""

from __future__ import annotations

import random

from raft3d.consensus import ConfState, NodeId, Role

from .parts import ClusterParts
from .sim_node import SimNode
from .state_machine import SimStateMachine


class Faults(ClusterParts):
    """The faults part of ``harness.Cluster`` (see ``parts``)."""

    def crash(self, node: SimNode) -> None:
        self._log(f"CRASH {node.node_id} (pending persist lost: {node.pending is not None})")
        self.checker.on_crash(node)
        node.core = None
        node.step = None
        node.roles = None
        node.pending = None
        node.plan = None
        node.incarnation += 1
        self.crashes += 1
        # Its peers' transports see the connection drop, usually at once.
        for other in self._node_list:
            if other.core is not None and self.rng.random() < 0.7:
                self._link_broken(other, node.node_id)

    def _link_broken(self, observer: SimNode, peer: NodeId) -> None:
        """What the transport reports when a connection to ``peer`` is lost."""
        core = observer.core
        if core is None:
            return
        self._log(f"LINK {observer.node_id}->{peer} lost")
        core.report_unreachable(peer)
        self._after_input(observer)

    def wipe(self, node: SimNode) -> None:
        """A crashed node's whole data directory is lost. It restarts empty (a bootstrap
        member still knows the bootstrap voters, as its config file lists them), in recovery
        mode until its core reports it recovered; the driver keeps a marker of that on disk,
        here ``SimNode.recovering``. Its old connections, and what was in flight on them,
        are gone, and its peers' transports notice."""
        assert node.core is None
        self._log(f"WIPE {node.node_id} (durable term {node.storage.hard_state.term})")
        self.checker.on_wipe(node)
        node.storage = self._storage_factory()
        node.sm = SimStateMachine()
        node.recovering = True
        self.wipes += 1
        self.network.forget(node.node_id)
        for other in self._node_list:
            if other.core is not None:
                self._link_broken(other, node.node_id)

    def may_wipe(self, victim: SimNode) -> bool:
        """The fault model of lost data directories. At most a minority of the voters of any
        configuration in use may be without their data at once (with more, no quorum of
        intact voters is left: recovery cannot end, only an operator can help). And only a
        node whose term no leader has yet exceeded: one wiped in a higher term (campaigning,
        or voting for a candidate that lost, in a minority partition) may have voted in a
        term it can no longer know about (see ``raft3d.consensus.recovery``)."""
        if victim.storage.hard_state.term > max(self.checker.leaders, default=0):
            return False
        lost = {n.node_id for n in self._node_list if n.recovering} | {victim.node_id}
        for conf in map(self._conf_of, self._node_list):
            if len(lost.intersection(conf.members)) > (len(conf.voters) - 1) // 2:
                return False
        return True

    def _conf_of(self, node: SimNode) -> ConfState:
        """The configuration ``node`` uses (a crashed one: what it would restart with)."""
        if node.core is not None:
            return node.core.conf_state
        config = self.cfg.core_config(node.node_id, node.bootstrap)
        initial = node.storage.initial_state()
        return self._core_factory(config, initial, random.Random(0)).conf_state

    def recovering(self) -> bool:
        """Whether some node is still recovering from a lost data directory."""
        return any(n.recovering for n in self._node_list)

    def restart(self, node: SimNode) -> None:
        self._start(node)
        core = node.live_core()
        self._log(
            f"RESTART {node.node_id} term={core.term} commit={core.commit_index} "
            f"last={core.last_index} snap={core.snapshot_index}"
        )
        self.checker.on_restart(node)

    def _cut_off_new_leaders(self) -> None:
        """A leader that dies on the network right after winning leaves its first entries on
        its own disk only: the situation of the Raft paper's Figure 8."""
        for node in self._node_list:
            core = node.core
            if core is None or core.role is not Role.LEADER or core.term <= node.led_term:
                continue
            node.led_term = core.term
            if self.rng.random() < self.cfg.leader_flap_rate:
                others = [i for i in self.nodes if i != node.node_id]
                self.network.partition([[node.node_id], others])
                # Long enough for the others to elect someone else.
                hold = self.rng.randint(self.cfg.election_ticks, 3 * self.cfg.election_ticks)
                self._partition_held_until = self.now + hold
                self._log(f"ISOLATE new leader {node.node_id} of term {core.term}")

    def _inject_faults(self) -> None:
        cfg = self.cfg
        rng = self.rng
        live = [n for n in self._node_list if n.core is not None]
        if live and rng.random() < cfg.crash_rate:
            leaders = [n for n in live if n.live_core().role is Role.LEADER]
            victim = rng.choice(leaders) if leaders and rng.random() < 0.5 else rng.choice(live)
            self.crash(victim)
            if rng.random() < cfg.reboot_rate:
                self.restart(victim)
        dead = [n for n in self._node_list if n.core is None]
        if dead and rng.random() < cfg.restart_rate:
            victim = rng.choice(dead)
            if cfg.wipe_rate and self._wipe_rng.random() < cfg.wipe_rate and self.may_wipe(victim):
                self.wipe(victim)
            self.restart(victim)
        if rng.random() < cfg.partition_rate:
            self._partition()
        elif (
            self.network.blocked
            and self.now >= self._partition_held_until
            and rng.random() < cfg.heal_rate
        ):
            self._log("HEAL partition")
            self.network.heal()
        if live and rng.random() < 0.01:  # a flaky link: dropped and redialled at once
            observer = rng.choice(live)
            self._link_broken(
                observer, rng.choice([i for i in self.nodes if i != observer.node_id])
            )
        if rng.random() < 0.02:
            self.weather.drop_rate = rng.choice([0.0, cfg.drop_rate, 2 * cfg.drop_rate])
            self.weather.dup_rate = rng.choice([0.0, cfg.dup_rate])
            self.weather.max_delay = rng.randint(1, cfg.max_delay)

    def _partition(self) -> None:
        rng = self.rng
        ids = list(self.nodes)
        kind = rng.random()
        if kind < 0.5:
            rng.shuffle(ids)
            cut = rng.randint(1, len(ids) - 1)
            groups = [ids[:cut], ids[cut:]]
            self.network.partition(groups)
            self._log(f"PARTITION {groups}")
        elif kind < 0.8:
            leaders = [n.node_id for n in self._node_list if n.core and n.core.role is Role.LEADER]
            lonely = rng.choice(leaders or ids)
            self.network.partition([[lonely], [i for i in ids if i != lonely]])
            self._log(f"ISOLATE {lonely}")
        else:
            frm, to = rng.sample(ids, 2)
            self.network.block_one_way(frm, to)
            self._log(f"BLOCK {frm}->{to}")
        for frm, to in sorted(self.network.blocked):
            if rng.random() < 0.5:
                self._link_broken(self.nodes[frm], to)
        # Partitions last from a moment to a few election timeouts.
        hold = rng.randint(0, 3 * self.cfg.election_ticks)
        self._partition_held_until = max(self._partition_held_until, self.now + hold)
