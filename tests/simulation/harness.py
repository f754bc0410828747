"""The simulated cluster: nodes, network, clients, faults and the driver loop, in virtual time.

One ``step`` is one tick of virtual time: faults may strike, clients propose and read, every
live node ticks, the messages due at this time are delivered, and nodes run their Ready
loops. Safety is checked after every input to every node and at the end of every step.

The simulated driver follows the Ready contract (persist, then send, then apply, then
advance), with two twists real drivers are allowed: the persist of a Ready may take several
steps ("slow disk") while the core keeps receiving input, and a leader may send its APP,
HEARTBEAT and SNAP messages before its own write completed (as etcd's leaders do). A crash
loses a Ready whose persist had not finished.

Everything comes from the seed: the knobs of the run (``SimConfig.from_seed``) and every
random choice during it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from raft3d.consensus import (
    ConfState,
    CoreConfig,
    Entry,
    InitialState,
    Message,
    MsgType,
    NodeId,
    NotLeaderError,
    RaftCore,
    Role,
)
from raft3d.consensus.membership import ConfChange, LeadershipTransferError
from raft3d.node.ready import ReadyStep
from raft3d.node.roles import RoleWatch

from .checker import InvariantViolation, SafetyChecker
from .membership import MembershipNemesis
from .network import NetworkWeather, SimNetwork
from .sim_node import SimNode
from .state_machine import SimApp, SimStateMachine
from .storage import MemoryStorage
from .workload import Workload

CoreFactory = Callable[[CoreConfig, InitialState, random.Random], RaftCore]
StorageFactory = Callable[[], MemoryStorage]
Trace = Callable[[str], None]

MEMBERSHIP_SHARE = 0.4  # of the seeds run with membership changes
WIPE_RATES = (0.1, 0.3, 0.6)  # ``SimConfig.with_wipes`` picks one


class LivenessViolation(AssertionError):
    """After all faults healed, the cluster did not elect a leader and commit in time."""


@dataclass(frozen=True)
class SimConfig:
    seed: int
    nodes: int
    steps: int
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_bytes: int = 1 << 20
    max_inflight: int = 256
    chunk_bytes: int = 1024
    snapshot_every: int = 10
    drop_rate: float = 0.05
    dup_rate: float = 0.02
    max_delay: int = 2
    crash_rate: float = 0.01
    restart_rate: float = 0.1
    reboot_rate: float = 0.3  # chance a crashed node comes straight back in the same step
    leader_flap_rate: float = 0.0  # chance a newly elected leader is cut off at once
    partition_rate: float = 0.01
    heal_rate: float = 0.1
    propose_rate: float = 0.4
    read_rate: float = 0.1
    slow_disk_rate: float = 0.2  # typical chance a persist is still running at a given moment
    early_send: bool = False
    # Write every commit index change before applying (the node driver does not: it leaves a
    # commit-only change volatile). On, so that the checker's "a restart never falls below
    # what was applied" holds; test_checker_catches_bugs shows what happens with it off.
    sync_commit: bool = True
    # Ticks before an unanswered read is asked again (the driver: 0.1 s). Off by default so
    # that every seed keeps the history it had before reads were retried (regression seeds
    # replay what they were kept for); test_simulation runs seeds with it on.
    read_retry_ticks: float = float("inf")
    eager_drive: float = 0.6  # chance a node runs its Ready loop right after an input
    wire_rate: float = 0.02
    membership_rate: float = 0.0  # chance per step of a membership change (membership.py)
    promote_lag: int = 4
    trailing_entries: int = 0  # log entries a core keeps below its own snapshots
    # Chance that a crashed node restarts with its whole data directory lost, in recovery
    # mode (``Cluster.wipe``). Off by default so that every seed keeps its history;
    # test_simulation runs seeds with it on (``with_wipes``).
    wipe_rate: float = 0.0

    @classmethod
    def from_seed(cls, seed: int, nodes: int, steps: int) -> SimConfig:
        """Pick the run's knobs from the seed; membership changes come from a stream of
        their own, so that turning them on leaves the other knobs as they were."""
        cfg = cls._knobs_from_seed(seed, nodes, steps)
        rng = random.Random(seed * 6007 + nodes)
        if rng.random() < MEMBERSHIP_SHARE:
            return replace(
                cfg,
                membership_rate=rng.uniform(0.02, 0.1),
                promote_lag=rng.choice([0, 2, 8]),
            )
        return cfg

    def with_wipes(self) -> SimConfig:
        """The same run with lost data directories among its faults (rate from the seed)."""
        rng = random.Random(self.seed * 5381 + self.nodes)
        return replace(self, wipe_rate=rng.choice(WIPE_RATES))

    @classmethod
    def _knobs_from_seed(cls, seed: int, nodes: int, steps: int) -> SimConfig:
        """Pick the run's knobs from the seed, so that seeds explore different regimes."""
        rng = random.Random(seed * 7919 + nodes)
        if rng.random() < 0.35:
            return cls._chaotic(rng, seed, nodes, steps)
        election = rng.randint(8, 16)
        both_on = rng.random() < 0.8
        return cls(
            seed=seed,
            nodes=nodes,
            steps=steps,
            election_ticks=election,
            heartbeat_ticks=rng.randint(1, 3),
            pre_vote=both_on or rng.random() < 0.5,
            check_quorum=both_on or rng.random() < 0.5,
            max_msg_bytes=rng.choice([1, 40, 200, 1 << 20]),
            max_inflight=rng.choice([1, 2, 4, 256]),
            chunk_bytes=rng.choice([32, 128, 512, 4096]),
            snapshot_every=rng.randint(5, 20),
            drop_rate=rng.choice([0.0, 0.02, 0.1, 0.2]),
            dup_rate=rng.choice([0.0, 0.02, 0.1]),
            max_delay=rng.randint(1, 4),
            crash_rate=rng.choice([0.0, 0.005, 0.02, 0.05]),
            restart_rate=rng.uniform(0.05, 0.3),
            reboot_rate=rng.choice([0.0, 0.3, 0.8]),
            leader_flap_rate=rng.choice([0.0, 0.0, 0.1]),
            partition_rate=rng.choice([0.0, 0.01, 0.03]),
            heal_rate=rng.uniform(0.03, 0.2),
            propose_rate=rng.uniform(0.1, 0.7),
            read_rate=rng.uniform(0.0, 0.3),
            slow_disk_rate=rng.choice([0.0, 0.2, 0.5]),
            early_send=rng.random() < 0.5,
            eager_drive=rng.uniform(0.2, 1.0),
        )

    @classmethod
    def _chaotic(cls, rng: random.Random, seed: int, nodes: int, steps: int) -> SimConfig:
        """Short election timeouts against slow links and frequent crashes of leaders: many
        elections, competing candidates in the same term and leaders dying mid-replication
        (the raw material of Raft's classic bugs)."""
        return cls(
            seed=seed,
            nodes=nodes,
            steps=steps,
            election_ticks=rng.randint(5, 8),
            heartbeat_ticks=rng.randint(1, 2),
            pre_vote=rng.random() < 0.6,
            check_quorum=rng.random() < 0.6,
            max_msg_bytes=rng.choice([1, 1, 40, 1 << 20]),
            max_inflight=rng.choice([1, 2, 256]),
            chunk_bytes=rng.choice([128, 512, 4096]),
            snapshot_every=rng.randint(5, 20),
            drop_rate=rng.choice([0.0, 0.05, 0.15]),
            dup_rate=rng.choice([0.0, 0.05, 0.2]),
            max_delay=rng.randint(2, 4),
            crash_rate=rng.uniform(0.04, 0.1),
            restart_rate=rng.uniform(0.2, 0.6),
            reboot_rate=rng.choice([0.3, 0.8]),
            leader_flap_rate=rng.uniform(0.2, 0.6),
            partition_rate=rng.choice([0.0, 0.03, 0.06]),
            heal_rate=rng.uniform(0.1, 0.3),
            propose_rate=rng.uniform(0.2, 0.8),
            read_rate=rng.uniform(0.0, 0.3),
            slow_disk_rate=rng.choice([0.0, 0.3, 0.6]),
            early_send=rng.random() < 0.5,
            eager_drive=rng.uniform(0.2, 1.0),
        )

    def core_config(
        self, node_id: NodeId, voters: tuple[NodeId, ...], recovering: bool = False
    ) -> CoreConfig:
        return CoreConfig(
            node_id=node_id,
            voters=voters,
            election_ticks=self.election_ticks,
            heartbeat_ticks=self.heartbeat_ticks,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            max_msg_bytes=self.max_msg_bytes,
            max_inflight_msgs=self.max_inflight,
            max_entry_bytes=1024,
            snapshot_chunk_bytes=self.chunk_bytes,
            max_committed_bytes_per_ready=256,
            promote_lag=self.promote_lag,
            trailing_entries=self.trailing_entries,
            recovering=recovering,
        )


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


class Cluster:
    def __init__(
        self,
        cfg: SimConfig,
        core_factory: CoreFactory = RaftCore,
        storage_factory: StorageFactory = MemoryStorage,
        trace: Trace | None = None,
    ) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self._core_factory = core_factory
        self._trace = trace
        self._storage_factory = storage_factory
        self.voters = tuple(f"n{k + 1}" for k in range(cfg.nodes))  # the bootstrap config
        self.nodes = {nid: SimNode(nid, storage_factory(), self.voters) for nid in self.voters}
        self._node_list = list(self.nodes.values())
        for node in self._node_list:
            self._pick_disk(node)
        self.weather = NetworkWeather(cfg.drop_rate, cfg.dup_rate, 1, cfg.max_delay)
        self.network = SimNetwork(self.rng, self.weather, cfg.wire_rate)
        self.checker = SafetyChecker(self.nodes)
        self.membership = (
            MembershipNemesis(self, cfg.seed, cfg.membership_rate) if cfg.membership_rate else None
        )
        self.workload = Workload()
        self.now = 0
        self.crashes = 0
        self.wipes = 0
        self._wipe_rng = random.Random(cfg.seed * 31337 + 5)
        self.snapshots_installed = 0
        self._writes = 0
        self._reads = 0
        self._faults_on = True
        self._partition_held_until = 0  # no healing before this time
        for node in self._node_list:
            self._start(node)

    # --- node lifecycle --------------------------------------------------------------------

    def _log(self, text: str) -> None:
        if self._trace is not None:
            self._trace(f"[t={self.now}] {text}")

    def _pick_disk(self, node: SimNode) -> None:
        # Disks differ: some nodes write at once, others often take several steps.
        rate = self.cfg.slow_disk_rate
        node.disk_slowness = self.rng.choice([0.0, rate, min(0.8, 2 * rate)])

    def add_node(self, node_id: NodeId) -> SimNode:
        """Start a brand-new process with an empty disk and no configuration (it joins)."""
        node = SimNode(node_id, self._storage_factory())
        self._pick_disk(node)
        self.nodes[node_id] = node
        self._node_list.append(node)
        self.checker.add_node(node)
        self._start(node)
        self._log(f"NEW NODE {node_id}")
        return node

    def _start(self, node: SimNode) -> None:
        storage = node.storage
        rng = random.Random(self.rng.getrandbits(64))
        config = self.cfg.core_config(node.node_id, node.bootstrap, node.recovering)
        core = node.core = self._core_factory(config, storage.initial_state(), rng)
        snap = storage.snapshot
        node.sm = SimStateMachine.from_snapshot(snap.data) if snap else SimStateMachine()
        # The node driver's own per-Ready decisions and proposal/read bookkeeping.
        step = node.step = ReadyStep(
            SimApp(self, node),
            durable=storage.hard_state,
            applied=storage.snapshot_index,
            snapshot_threshold=self.cfg.snapshot_every,
            read_retry=self.cfg.read_retry_ticks,
            read_context_prefix=f"{node.node_id}.{node.incarnation}.".encode(),
            on_apply=lambda entry: self._applied(node, entry),
            sync_commit=self.cfg.sync_commit,
        )
        node.roles = RoleWatch(node.node_id, core.term, step.counters, step.proposals.fail)
        node.pending = None
        node.plan = None

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

    # --- the driver ------------------------------------------------------------------------

    def after_input(self, node: SimNode) -> None:
        self._after_input(node)

    def _after_input(self, node: SimNode) -> None:
        self.checker.observe(node)
        if self.rng.random() < self.cfg.eager_drive:
            self.drive(node)

    def drive(self, node: SimNode) -> None:
        """Run the node's Ready loop as far as its (possibly slow) disk allows: the node
        driver's loop (``raft3d.node.driver``) in virtual time, making the same decisions
        through the same ``ReadyStep``."""
        core, step = node.core, node.step
        if core is None or step is None:
            return
        slow = node.disk_slowness if self._faults_on else 0.0
        rng = self.rng
        if node.pending is not None:
            if slow and rng.random() < slow:
                return
            self._finish_ready(node)
        while core.has_ready():
            rd = core.ready()
            self.checker.on_ready(node, rd)
            plan = step.plan(rd, early_send=self.cfg.early_send)
            node.pending, node.plan = rd, plan
            for msg in plan.early:
                self._send(msg)
            if slow and rng.random() < slow:
                return
            self._finish_ready(node)

    def _wake(self, node: SimNode) -> None:
        """What the driver does on every wakeup besides handling Readies: notice leadership
        changes (proposals of ended terms are in doubt) and ask again for overdue reads.
        Once per step is a valid schedule: a driver may coalesce many inputs per wakeup."""
        core, step, roles = node.core, node.step, node.roles
        if core is None or step is None or roles is None:
            return
        roles.observe(core)
        step.reads.issue(self.now, core.read_index)

    def _finish_ready(self, node: SimNode) -> None:
        rd, plan, core, step = node.pending, node.plan, node.core, node.step
        assert rd is not None and plan is not None and core is not None and step is not None
        node.pending = node.plan = None
        before = node.storage.hard_state
        write = plan.write
        if write is not None:
            node.storage.persist(write.hard_state, write.entries, write.snapshot)
            step.written(plan)
        if rd.recovered:
            self._log(f"{node.node_id} RECOVERED at commit {core.commit_index}")
            node.recovering = False  # the driver removes its marker once the Ready is durable
            self.checker.on_recovered(node)
        self.checker.on_persist(node, before, None if write is None else write.hard_state)
        for msg in plan.late:
            self._send(msg)
        step.finish(rd)  # installs and applies through SimApp and _applied
        core.advance(rd)
        self.checker.observe(node)
        if step.snapshot_due():
            self._compact(node, core, step)

    def restored(self, node: SimNode, data: bytes) -> None:
        """The node's state machine restores a snapshot received from the leader."""
        node.sm = SimStateMachine.from_snapshot(data)
        self.snapshots_installed += 1
        self._log(f"{node.node_id} installed snapshot at {node.sm.applied_index}")
        self.checker.on_restore(node)

    def _applied(self, node: SimNode, entry: Entry) -> None:
        node.sm.apply(entry)
        self.checker.on_apply(node, entry)

    def _compact(self, node: SimNode, core: RaftCore, step: ReadyStep[int]) -> None:
        index = step.snapshot_point(core.snapshot_index)
        if index is None:
            return
        snapshot = core.compact(index, node.sm.snapshot_bytes())
        step.compacted(index)
        self.checker.on_compact(node, snapshot)
        node.storage.save_compaction(snapshot, node.sm.terms)

    def _send(self, msg: Message) -> None:
        if self._trace is not None:
            self._log(f"send {_describe(msg)}")
        self.checker.on_send(msg)
        self.network.send(msg, self.now)

    # --- one step of virtual time ----------------------------------------------------------

    def step(self) -> None:
        self.now += 1
        if self._faults_on:
            self._inject_faults()
        self._clients()
        if self.membership is not None and self._faults_on:
            self.membership.step()
        nodes = self._node_list
        for node in nodes:
            core = node.core
            if core is not None:
                core.tick()
                self._after_input(node)
        for msg in self.network.due(self.now):
            node = self.nodes[msg.to]
            core = node.core
            if core is None:
                continue
            if self._trace is not None:
                self._log(f"deliver {_describe(msg)}")
            core.step(msg)
            self._after_input(node)
        for node in nodes:
            self._wake(node)
            self.drive(node)
        if self._faults_on:
            self._cut_off_new_leaders()
        self.checker.end_of_step()

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

    def _clients(self) -> None:
        cfg = self.cfg
        rng = self.rng
        if rng.random() < cfg.propose_rate:
            live = [n for n in self._node_list if n.core is not None]
            if live:
                leaders = [n for n in live if n.live_core().role is Role.LEADER]
                target = rng.choice(leaders) if leaders and rng.random() < 0.9 else rng.choice(live)
                for _ in range(rng.choice((1, 1, 1, 2, 5))):
                    self.propose(target)
        if cfg.read_rate and rng.random() < cfg.read_rate:
            live = [n for n in self._node_list if n.core is not None]
            if live:
                self.read(rng.choice(live))

    def propose(self, node: SimNode, payload: bytes | None = None) -> tuple[int, int] | None:
        core = node.live_core()
        self._writes += 1
        if payload is None:
            payload = b"w%d" % self._writes
            if self.rng.random() < 0.05:
                payload += b"." * self.rng.randint(10, 300)
        try:
            index, term = core.propose(payload)
        except NotLeaderError as exc:
            if exc.leader_id != core.leader_id:
                raise InvariantViolation("NotLeaderError names the wrong leader") from exc
            return None
        except LeadershipTransferError:
            return None  # leadership is being handed over
        self._log(f"PROPOSE {payload[:12]!r} at {node.node_id} -> ({index}, {term})")
        node.live_step().proposals.add(index, term, self.workload.write())
        self._after_input(node)
        return index, term

    def propose_conf_change(self, node: SimNode, change: ConfChange) -> None:
        """Propose ``change`` at ``node``; raises what the core raises."""
        index, term = node.live_core().propose_conf_change(change)
        what = f"{change.type.name} {change.node_id}"
        self._log(f"CONF {what} at {node.node_id} -> ({index}, {term})")
        self._after_input(node)

    def read(self, node: SimNode) -> None:
        self._reads += 1
        reads = node.live_step().reads
        reads.add(self.workload.read(node.node_id))
        reads.issue(self.now, node.live_core().read_index)  # as the driver's next wakeup does
        self._after_input(node)

    # --- the end of the run ----------------------------------------------------------------

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
            core = node.live_core()
            core.tick()
            self._after_input(node)
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


def _describe(msg: Message) -> str:
    text = f"{msg.type.name} {msg.frm}->{msg.to} t{msg.term}"
    if msg.type is MsgType.APP:
        text += f" prev=({msg.index},{msg.log_term}) n={len(msg.entries)} commit={msg.commit}"
    elif msg.type is MsgType.APP_RESP:
        text += f" idx={msg.index} reject={msg.reject} hint=({msg.reject_hint},{msg.log_term})"
    elif msg.type is MsgType.SNAP:
        meta = msg.snapshot_meta
        text += f" snap={meta.index if meta else None} off={msg.offset} done={msg.done}"
    elif msg.type is MsgType.SNAP_RESP:
        text += f" idx={msg.index} off={msg.offset} reject={msg.reject} done={msg.done}"
    elif msg.type in (MsgType.VOTE, MsgType.PRE_VOTE):
        text += f" last=({msg.index},{msg.log_term})"
    elif msg.reject:
        text += " reject"
    return text


def liveness_bound(cfg: SimConfig) -> int:
    """Virtual time allowed after healing: a few election rounds plus catch-up."""
    return 40 * cfg.election_ticks + 200


def run_seed(
    seed: int,
    nodes: int,
    steps: int,
    *,
    core_factory: CoreFactory = RaftCore,
    storage_factory: StorageFactory = MemoryStorage,
    trace: Trace | None = None,
    cfg: SimConfig | None = None,
) -> SimResult:
    """Run one seed; raises InvariantViolation or LivenessViolation on failure."""
    cfg = cfg or SimConfig.from_seed(seed, nodes, steps)
    cluster = Cluster(cfg, core_factory, storage_factory, trace)
    for _ in range(steps):
        cluster.step()
    cluster.heal_and_check_liveness(liveness_bound(cfg))
    return cluster.result()


def default_shape(seed: int) -> tuple[int, int]:
    """(nodes, steps) of a seed in the default run: 3-node clusters for 60% of the seeds,
    5-node ones for the rest."""
    if seed % 5 in (1, 3):
        return 5, 200
    return 3, 250


def replay_command(seed: int, nodes: int, steps: int) -> str:
    return f".venv/bin/python -m tests.simulation --seed {seed} --nodes {nodes} --steps {steps}"
