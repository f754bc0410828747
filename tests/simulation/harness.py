"""The simulated cluster: nodes, network, clients, faults and the driver loop, in virtual time.

One ``step`` is one tick of virtual time: faults may strike, clients propose and read, every
live node ticks, the messages due at this time are delivered, and nodes run their Ready
loops. Safety is checked after every input to every node and at the end of every step.

The simulated driver follows the Ready contract (persist, then send, then apply, then
advance), with two twists real drivers are allowed: the persist of a Ready may take several
steps ("slow disk") while the core keeps receiving input, and a leader may send its APP,
HEARTBEAT and SNAP messages before its own write completed (as etcd's leaders do). A crash
loses a Ready whose persist had not finished.

Everything comes from the seed: the knobs of the run (``SimConfig.from_seed``, in
``sim_config``) and every random choice during it. ``Cluster`` holds the nodes, the driver
loop and the clients; its fault model lives in ``faults`` and the end of the run (healing,
the liveness check, the result) in ``ending``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raft3d.consensus import (
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
from .ending import Ending, SimResult, liveness_bound
from .faults import Faults
from .membership import MembershipNemesis
from .network import NetworkWeather, SimNetwork
from .sim_config import SimConfig
from .sim_node import SimNode
from .state_machine import SimApp, SimStateMachine
from .storage import MemoryStorage
from .workload import Workload

CoreFactory = Callable[[CoreConfig, InitialState, random.Random], RaftCore]
StorageFactory = Callable[[], MemoryStorage]
Trace = Callable[[str], None]


class Cluster(Faults, Ending):
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

    # --- the driver ------------------------------------------------------------------------

    def after_input(self, node: SimNode) -> None:
        self._after_input(node)

    def _tick(self, node: SimNode) -> None:
        core = node.core
        assert core is not None
        due = core.ticks_until_due()
        quiet, before = not core.has_ready(), core.status()
        core.tick()
        if due > 1:
            # The real driver sleeps through such ticks and runs them later in one go.
            self.checker.counting_tick(node, due, quiet, before)
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
            if node.core is not None:
                self._tick(node)
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


def replay_command(seed: int, nodes: int, steps: int) -> str:
    return f".venv/bin/python -m tests.simulation --seed {seed} --nodes {nodes} --steps {steps}"
