"""Raft cores for unit tests, driven by hand: ``make_core`` builds one with the product's
timer settings, ``drain`` runs one driver iteration on an instant disk, and ``Net`` wires a
few cores together, delivering messages only when a test asks; ``replicating_leader`` and
``compacted_leader`` are the starting points several tests share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from raft3d.config import RaftSettings
from raft3d.consensus import (
    Entry,
    HardState,
    InitialState,
    Message,
    MsgType,
    NodeId,
    RaftCore,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)
from raft3d.node.wiring import core_config

ABC = ("a", "b", "c")


def make_core(
    node_id: NodeId = "a",
    voters: tuple[NodeId, ...] = ABC,
    state: InitialState | None = None,
    seed: int = 0,
    **settings: Any,
) -> RaftCore:
    settings.setdefault("election_ticks", 10)
    settings.setdefault("heartbeat_ticks", 2)
    settings.setdefault("lost_leader_ticks", 0)  # within three heartbeats
    settings.setdefault("trailing_entries", 0)  # compaction drops the whole prefix
    config = replace(core_config(node_id, voters, RaftSettings()), **settings)
    return RaftCore(config, state or InitialState(), random.Random(seed))


def drain(core: RaftCore) -> Ready:
    """One driver iteration with an instant, always-successful disk."""
    rd = core.ready()
    core.advance(rd)
    return rd


def log_state(entries: list[tuple[int, int]], term: int, commit: int = 0) -> InitialState:
    return InitialState(
        HardState(term=term, vote=None, commit=commit),
        None,
        [Entry(i, t, b"x%d" % i) for i, t in entries],
    )


@dataclass
class Net:
    """A few cores wired together by hand: messages are delivered only when asked."""

    cores: dict[NodeId, RaftCore]
    outbox: list[Message] = field(default_factory=list)
    applied: dict[NodeId, list[Entry]] = field(default_factory=dict)
    read_states: dict[NodeId, list[ReadState]] = field(default_factory=dict)
    installed: dict[NodeId, list[Snapshot]] = field(default_factory=dict)
    readies: dict[NodeId, list[Ready]] = field(default_factory=dict)
    isolated: set[NodeId] = field(default_factory=set)

    @classmethod
    def of(
        cls,
        voters: tuple[NodeId, ...] = ABC,
        states: dict[NodeId, InitialState] | None = None,
        **settings: Any,
    ) -> Net:
        states = states or {}
        cores = {
            node: make_core(node, voters, states.get(node), seed=k, **settings)
            for k, node in enumerate(voters)
        }
        return cls(cores)

    def flush(self, node: NodeId) -> None:
        core = self.cores[node]
        while core.has_ready():
            rd = drain(core)
            self.readies.setdefault(node, []).append(rd)
            self.applied.setdefault(node, []).extend(rd.committed_entries)
            self.read_states.setdefault(node, []).extend(rd.read_states)
            if rd.snapshot is not None:
                self.installed.setdefault(node, []).append(rd.snapshot)
            self.outbox.extend(rd.messages)

    def flush_all(self) -> None:
        for node in self.cores:
            self.flush(node)

    def take(self, mtype: MsgType | None = None) -> list[Message]:
        """Remove and return queued messages (of one type, if given)."""
        self.flush_all()
        picked = [m for m in self.outbox if mtype is None or m.type is mtype]
        self.outbox = [m for m in self.outbox if m not in picked]
        return picked

    def deliver(self, msgs: list[Message]) -> None:
        for msg in msgs:
            if msg.frm not in self.isolated and msg.to not in self.isolated:
                self.cores[msg.to].step(msg)

    def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            msgs = self.take()
            if not msgs:
                return
            self.deliver(msgs)
        raise AssertionError("messages kept flowing")

    def tick(self, node: NodeId, times: int = 1) -> None:
        for _ in range(times):
            self.cores[node].tick()

    def campaign(self, node: NodeId) -> None:
        """Tick ``node`` until its election timeout fires."""
        core = self.cores[node]
        for _ in range(100):
            core.tick()
            if core.role is not Role.FOLLOWER:
                return
        raise AssertionError(f"{node} never timed out")

    def elect(self, node: NodeId) -> RaftCore:
        self.campaign(node)
        self.settle()
        leader = self.cores[node]
        assert leader.role is Role.LEADER
        return leader

    def heartbeat_round(self, leader: NodeId) -> None:
        """Tick the leader until it sends heartbeats, and deliver everything."""
        core = self.cores[leader]
        for _ in range(100):
            core.tick()
            self.flush(leader)
            if any(m.type is MsgType.HEARTBEAT for m in self.outbox):
                self.settle()
                return
        raise AssertionError("no heartbeat")

    def tick_until(self, node: NodeId, mtype: MsgType) -> list[Message]:
        """Tick ``node`` until it sends a message of ``mtype``; return those (undelivered)."""
        for _ in range(100):
            self.cores[node].tick()
            found = self.take(mtype)
            if found:
                return found
        raise AssertionError(f"{node} sent no {mtype.name}")


def replicating_leader(**settings: Any) -> tuple[Net, RaftCore]:
    """A leader whose followers are all in replicate state, everything committed."""
    net = Net.of(**settings)
    leader = net.elect("a")
    leader.propose(b"warm-up")
    net.settle()
    assert {p.state for p in leader.status().peers} == {"replicate"}
    return net, leader


def compacted_leader(chunk: int, data: bytes) -> tuple[Net, RaftCore]:
    """Leader a and follower b hold entries 1..6, compacted at 5; c knows nothing."""
    net = Net.of(snapshot_chunk_bytes=chunk)
    net.isolated.add("c")
    leader = net.elect("a")
    for k in range(5):
        leader.propose(b"p%d" % k)
    net.settle()
    assert leader.applied_index == 6
    snap = leader.compact(5, data)
    assert snap.meta == SnapshotMeta(5, 1, ABC)
    net.isolated.clear()
    return net, leader
