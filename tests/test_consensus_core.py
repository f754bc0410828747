"""Unit tests of specific behaviours of the Raft core, driven message by message."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from raft3d.config import RaftSettings
from raft3d.consensus import (
    Entry,
    EntryTooLargeError,
    EntryType,
    HardState,
    InitialState,
    Message,
    MsgType,
    NodeId,
    NotLeaderError,
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


# --- elections -------------------------------------------------------------------------------


def test_single_node_cluster_elects_itself_and_commits_alone() -> None:
    core = make_core("a", ("a",))
    for _ in range(20):
        core.tick()
    assert core.role is Role.LEADER and core.term == 1 and core.leader_id == "a"
    rd = drain(core)
    assert [e.type for e in rd.entries] == [EntryType.NOOP]
    rd = drain(core)
    assert [e.index for e in rd.committed_entries] == [1]
    index, term = core.propose(b"solo")
    assert (index, term) == (2, 1)
    assert core.commit_index == 1  # not before its own write is durable
    drain(core)
    rd = drain(core)
    assert [e.data for e in rd.committed_entries] == [b"solo"]
    assert core.commit_index == core.applied_index == 2


def test_three_nodes_elect_one_leader_that_everyone_follows() -> None:
    net = Net.of()
    leader = net.elect("a")
    assert leader.term == 1
    for node in ("b", "c"):
        assert net.cores[node].role is Role.FOLLOWER
        assert net.cores[node].leader_id == "a"
        assert net.cores[node].term == 1
    assert all(core.commit_index == 1 for core in net.cores.values())  # the leader's no-op


def test_election_timeouts_are_randomized_within_one_to_two_timeouts() -> None:
    waits = set()
    for seed in range(30):
        core = make_core(seed=seed, election_ticks=10)
        ticks = 0
        while core.role is Role.FOLLOWER:
            core.tick()
            ticks += 1
        assert 10 <= ticks < 20
        waits.add(ticks)
    assert len(waits) > 3


def test_pre_vote_keeps_term_until_a_majority_would_vote() -> None:
    net = Net.of()
    core = net.cores["c"]
    net.isolated.add("c")
    for _ in range(200):
        core.tick()
        net.settle()
    assert core.term == 0  # an isolated node never inflates its term
    assert core.role is Role.PRE_CANDIDATE


def test_every_message_names_its_sender_and_term_pre_votes_the_term_they_ask_for() -> None:
    net = Net.of()
    net.elect("a")
    net.cores["a"].propose(b"x")
    net.heartbeat_round("a")
    sent = [m for rds in net.readies.values() for rd in rds for m in rd.messages]
    assert {m.type for m in sent} >= {MsgType.PRE_VOTE, MsgType.VOTE, MsgType.APP}
    for msg in sent:
        assert msg.frm != msg.to
        if msg.type is MsgType.PRE_VOTE or msg.type is MsgType.PRE_VOTE_RESP:
            assert msg.term == 1  # the term "a" would campaign in, before it did
        else:
            assert msg.term == 1 == net.cores[msg.frm].term
    assert {m.frm for m in sent if m.type is MsgType.APP_RESP} == {"b", "c"}


def test_vote_requests_are_ignored_while_a_leader_is_alive() -> None:
    net = Net.of()
    net.elect("a")
    # c hears nothing from the leader any more and campaigns; b still hears a heartbeat.
    net.isolated.add("c")
    net.heartbeat_round("a")
    net.isolated.clear()
    net.campaign("c")
    pre_votes = net.take(MsgType.PRE_VOTE)
    assert pre_votes and all(m.term == 2 for m in pre_votes)
    net.deliver(pre_votes)
    assert net.take(MsgType.PRE_VOTE_RESP) == []  # ignored, not even refused
    assert net.cores["a"].role is Role.LEADER and net.cores["a"].term == 1
    assert net.cores["b"].term == 1

    # Even a real vote request of a higher term is ignored by a follower in its lease.
    vote = Message(MsgType.VOTE, "b", "c", 5, log_term=1, index=99)
    net.cores["b"].step(vote)
    assert net.cores["b"].term == 1 and net.take(MsgType.VOTE_RESP) == []


def test_check_quorum_leader_steps_down_when_cut_off() -> None:
    net = Net.of()
    leader = net.elect("a")
    net.isolated.add("a")
    for _ in range(25):
        leader.tick()
        net.settle()
    assert leader.role is Role.FOLLOWER
    assert leader.term == 1  # stepping down does not need a new term
    assert leader.leader_id is None


def test_leader_with_live_followers_keeps_leading() -> None:
    net = Net.of()
    leader = net.elect("a")
    for _ in range(100):
        leader.tick()
        net.settle()
    assert leader.role is Role.LEADER and leader.term == 1


def test_vote_goes_out_in_the_ready_that_persists_it() -> None:
    core = make_core("b")
    core.step(Message(MsgType.VOTE, "b", "c", 1, log_term=0, index=0))
    rd = core.ready()
    assert rd.hard_state == HardState(term=1, vote="c", commit=0)
    grants = [m for m in rd.messages if m.type is MsgType.VOTE_RESP]
    assert len(grants) == 1 and not grants[0].reject
    core.advance(rd)
    # Same term, other candidate: refused.
    core.step(Message(MsgType.VOTE, "b", "a", 1, log_term=0, index=0))
    [refusal] = drain(core).messages
    assert refusal.reject


def test_vote_refused_to_candidate_with_stale_log() -> None:
    core = make_core("b", state=log_state([(1, 1), (2, 2)], term=2))
    core.step(Message(MsgType.VOTE, "b", "c", 3, log_term=1, index=5))
    rd = drain(core)
    assert rd.hard_state is not None and rd.hard_state.term == 3 and rd.hard_state.vote is None
    [resp] = rd.messages
    assert resp.type is MsgType.VOTE_RESP and resp.reject


def test_grant_for_an_old_term_is_dropped_when_term_moves_on_before_ready() -> None:
    core = make_core("b")
    core.step(Message(MsgType.VOTE, "b", "c", 1, log_term=0, index=0))
    core.step(Message(MsgType.APP, "b", "a", 2, log_term=0, index=0))
    rd = core.ready()
    assert all(m.term == 2 for m in rd.messages)
    assert not any(m.type is MsgType.VOTE_RESP for m in rd.messages)


# --- log replication -------------------------------------------------------------------------


def test_new_leader_appends_a_noop_first() -> None:
    net = Net.of()
    net.campaign("a")
    net.deliver(net.take(MsgType.PRE_VOTE))
    net.deliver(net.take(MsgType.PRE_VOTE_RESP))
    net.deliver(net.take(MsgType.VOTE))
    net.deliver(net.take(MsgType.VOTE_RESP))
    leader = net.cores["a"]
    assert leader.role is Role.LEADER
    rd = leader.ready()
    assert rd.entries == [Entry(1, 1, b"", EntryType.NOOP)]
    apps = [m for m in rd.messages if m.type is MsgType.APP]
    assert {m.to for m in apps} == {"b", "c"}
    assert all(m.entries == rd.entries for m in apps)


def test_previous_term_entry_is_not_committed_by_counting_replicas() -> None:
    # a holds entry 2 from term 2 that never reached a majority; it now leads term 3.
    states = {
        "a": log_state([(1, 1), (2, 2)], term=2, commit=1),
        "b": log_state([(1, 1)], term=2, commit=1),
        "c": log_state([(1, 1)], term=2, commit=1),
    }
    net = Net.of(states=states, max_msg_bytes=1)  # one entry per APP
    net.campaign("a")
    for mtype in (MsgType.PRE_VOTE, MsgType.PRE_VOTE_RESP, MsgType.VOTE, MsgType.VOTE_RESP):
        net.deliver(net.take(mtype))
    leader = net.cores["a"]
    assert leader.role is Role.LEADER and leader.term == 3
    # Probe b: it lacks entry 2, refuses, and is then sent entry 2 alone.
    net.deliver([m for m in net.take(MsgType.APP) if m.to == "b"])
    net.deliver(net.take(MsgType.APP_RESP))
    [app] = [m for m in net.take(MsgType.APP) if m.to == "b"]
    assert [e.index for e in app.entries] == [2]
    net.deliver([app])
    [ack] = net.take(MsgType.APP_RESP)
    assert ack.index == 2 and not ack.reject
    net.deliver([ack])
    # Entry 2 (term 2) is now on a and b, a majority, but it is not the leader's term.
    assert leader.commit_index == 1
    net.settle()
    assert leader.commit_index == 3  # it commits along with the term-3 no-op
    assert [e.index for e in net.applied["a"]] == [1, 2, 3]


def test_leader_counts_its_own_entry_only_once_durable() -> None:
    net = Net.of()
    leader = net.elect("a")
    index, _ = leader.propose(b"x")
    rd = leader.ready()  # handed to the disk, not yet durable
    net.outbox.extend(m for m in rd.messages if m.to == "b")
    net.settle()
    # b's copy is durable and acknowledged, the leader's own is not: one of three.
    assert net.cores["b"].last_index == index
    assert leader.commit_index < index
    leader.advance(rd)
    assert leader.commit_index == index


def test_follower_reject_hint_lets_the_leader_skip_a_whole_term() -> None:
    # Leader: 1@t1, 2-4@t3, 5-7@t5.  Follower: 1@t1, 2-6@t2 (a stale term-2 tail).
    leader_log = [(1, 1), (2, 3), (3, 3), (4, 3), (5, 5), (6, 5), (7, 5)]
    follower = make_core("b", state=log_state([(1, 1)] + [(i, 2) for i in range(2, 7)], 5))
    follower.step(Message(MsgType.APP, "b", "a", 6, log_term=5, index=7))
    [reject] = drain(follower).messages
    assert reject.reject and reject.index == 7
    assert (reject.reject_hint, reject.log_term) == (6, 2)  # its last entry, of term 2

    leader = make_core("a", state=log_state(leader_log, 5, commit=1))
    net = Net({"a": leader, "b": make_core("b"), "c": make_core("c")})
    net.campaign("a")
    for mtype in (MsgType.PRE_VOTE, MsgType.PRE_VOTE_RESP, MsgType.VOTE, MsgType.VOTE_RESP):
        net.deliver(net.take(mtype))
    net.take()
    # The new leader probed b after its last entry before the no-op, 7, just as above.
    reject.to, reject.frm, reject.term = "a", "b", leader.term
    leader.step(reject)
    [probe] = [m for m in net.take(MsgType.APP) if m.to == "b"]
    # No entry of term 3 can match a follower whose entries there are of term 2 or less:
    # the leader goes straight back to index 1.
    assert probe.index == 1 and probe.log_term == 1


def test_follower_keeps_matching_entries_after_a_stale_append() -> None:
    core = make_core("b", state=log_state([(1, 1), (2, 1), (3, 1), (4, 1)], term=1))
    stale = Message(MsgType.APP, "b", "a", 1, log_term=1, index=1, entries=[Entry(2, 1, b"x2")])
    core.step(stale)
    rd = drain(core)
    assert core.last_index == 4 and rd.entries == []
    [ack] = rd.messages
    assert ack.index == 2 and not ack.reject


def test_follower_replaces_only_a_conflicting_suffix() -> None:
    core = make_core("b", state=log_state([(1, 1), (2, 1), (3, 1)], term=1))
    app = Message(
        MsgType.APP, "b", "a", 2, log_term=1, index=1, entries=[Entry(2, 1, b"x2"), Entry(3, 2)]
    )
    core.step(app)
    rd = drain(core)
    assert rd.entries == [Entry(3, 2)]
    assert core.term_at(2) == 1 and core.term_at(3) == 2


def replicating_leader(**settings: Any) -> tuple[Net, RaftCore]:
    """A leader whose followers are all in replicate state, everything committed."""
    net = Net.of(**settings)
    leader = net.elect("a")
    leader.propose(b"warm-up")
    net.settle()
    assert {p.state for p in leader.status().peers} == {"replicate"}
    return net, leader


def test_proposals_between_readies_go_out_batched() -> None:
    net, leader = replicating_leader()
    for k in range(5):
        leader.propose(b"p%d" % k)
    apps = net.take(MsgType.APP)
    assert sorted(m.to for m in apps) == ["b", "c"]
    assert all(len(m.entries) == 5 for m in apps)


def test_append_messages_respect_the_byte_cap() -> None:
    net, leader = replicating_leader(max_msg_bytes=100)
    for k in range(6):
        leader.propose(b"%030d" % k)  # 46 bytes each, counting overhead: two fit
    to_b = [m for m in net.take(MsgType.APP) if m.to == "b"]
    assert [len(m.entries) for m in to_b] == [2, 2, 2]
    assert all(sum(e.size() for e in m.entries) <= 100 for m in to_b)
    # An entry bigger than the cap still goes, alone.
    leader.propose(b"y" * 500)
    [big] = [m for m in net.take(MsgType.APP) if m.to == "b"]
    assert len(big.entries) == 1


def test_pipelined_appends_are_bounded_by_max_inflight() -> None:
    net, leader = replicating_leader(max_msg_bytes=1, max_inflight_msgs=3)
    for k in range(10):
        leader.propose(b"p%d" % k)
    to_b = [m for m in net.take(MsgType.APP) if m.to == "b"]
    assert len(to_b) == 3  # one entry each, three in flight, the rest held back
    net.deliver(to_b[:1])
    net.deliver(net.take(MsgType.APP_RESP))
    more = [m for m in net.take(MsgType.APP) if m.to == "b"]
    assert len(more) == 1  # one ack frees one slot
    assert more[0].index == to_b[-1].entries[0].index


def test_unreachable_follower_drops_back_to_probing() -> None:
    _, leader = replicating_leader()
    leader.report_unreachable("b")
    states = {p.node_id: p.state for p in leader.status().peers}
    assert states == {"b": "probe", "c": "replicate"}


def test_follower_campaigns_soon_after_its_link_to_the_leader_breaks() -> None:
    net = Net.of()
    net.elect("a")
    net.heartbeat_round("a")
    follower = net.cores["b"]
    follower.report_unreachable("a")
    assert follower.leader_id is None
    ticks = 0
    while follower.role is Role.FOLLOWER:
        follower.tick()
        ticks += 1
    # heartbeat_ticks is 2 here: within 3 heartbeats, well before the 10-tick minimum timeout.
    assert ticks <= 6
    assert follower.role is Role.PRE_CANDIDATE


def test_lost_leader_campaign_does_not_wait_for_heartbeats() -> None:
    # A heartbeat as long as the election timeout allows: the campaign after a broken link
    # still comes within lost_leader_ticks, not three heartbeats.
    net = Net.of(election_ticks=20, heartbeat_ticks=10, lost_leader_ticks=3)
    net.elect("a")
    net.heartbeat_round("a")
    for seed_node in ("b", "c"):
        follower = net.cores[seed_node]
        follower.report_unreachable("a")
        ticks = 0
        while follower.role is Role.FOLLOWER:
            follower.tick()
            ticks += 1
        assert ticks <= 3
        assert follower.role is Role.PRE_CANDIDATE


def test_default_timers_campaign_soon_after_a_broken_link() -> None:
    # Defaults: heartbeats every 200 ms, elections after 0.6-1.2 s; a follower that loses
    # its link to the leader campaigns within 150 ms all the same.
    raft = RaftSettings()
    assert (raft.heartbeat_ms, raft.election_timeout_ms) == (200, 600)
    config = core_config("b", ABC, raft)
    assert config.lost_leader_ticks * raft.tick_ms == 150
    core = RaftCore(config, InitialState(), random.Random(3))
    core.step(Message(MsgType.HEARTBEAT, "b", "a", 1))
    assert core.leader_id == "a"
    core.report_unreachable("a")
    ticks = 0
    while core.role is Role.FOLLOWER:
        core.tick()
        ticks += 1
    assert ticks * raft.tick_ms <= 150


def test_peer_that_lost_the_leader_too_grants_the_pre_vote() -> None:
    net = Net.of()
    net.elect("a")
    net.heartbeat_round("a")
    net.isolated.add("a")  # the leader's process died
    for node in ("b", "c"):
        net.cores[node].report_unreachable("a")
    net.campaign("b")
    net.settle()
    assert net.cores["b"].role is Role.LEADER


def test_live_leader_keeps_its_place_when_one_follower_loses_its_link() -> None:
    net = Net.of()
    leader = net.elect("a")
    net.heartbeat_round("a")
    term = leader.term
    net.cores["b"].report_unreachable("a")
    net.campaign("b")  # b asks for pre-votes; c still hears from a and refuses
    net.settle()
    assert leader.role is Role.LEADER and leader.term == term
    net.heartbeat_round("a")
    assert net.cores["b"].role is Role.FOLLOWER and net.cores["b"].leader_id == "a"


def test_follower_whose_data_was_wiped_is_caught_up_by_snapshot() -> None:
    net, leader = compacted_leader(300, b"state at 5")
    net.settle()
    assert {p.node_id: p.match_index for p in leader.status().peers}["b"] == 6
    net.cores["b"] = make_core("b", seed=1)  # restarted with an empty data directory
    net.heartbeat_round("a")
    net.settle()
    [installed] = net.installed["b"]
    assert installed.meta.index == 5
    assert net.cores["b"].last_index == leader.last_index == 6
    assert {p.node_id: p.match_index for p in leader.status().peers}["b"] == 6


# --- proposals -------------------------------------------------------------------------------


def test_not_leader_error_names_the_leader() -> None:
    net = Net.of()
    net.elect("a")
    with pytest.raises(NotLeaderError) as info:
        net.cores["b"].propose(b"x")
    assert info.value.leader_id == "a"
    with pytest.raises(NotLeaderError) as info:
        make_core("c").propose(b"x")
    assert info.value.leader_id is None


def test_entry_too_large_is_refused() -> None:
    net = Net.of(max_entry_bytes=10)
    leader = net.elect("a")
    with pytest.raises(EntryTooLargeError) as info:
        leader.propose(b"x" * 11)
    assert (info.value.size, info.value.limit) == (11, 10)
    assert leader.propose(b"x" * 10)[0] == 2


# --- ReadIndex -------------------------------------------------------------------------------


def test_leader_read_index_needs_a_heartbeat_quorum() -> None:
    net, leader = replicating_leader()
    leader.read_index(b"r1")
    heartbeats = net.take(MsgType.HEARTBEAT)
    assert {m.context for m in heartbeats} == {b"r1"}
    assert net.read_states.get("a", []) == []
    net.deliver([m for m in heartbeats if m.to == "b"])
    net.deliver(net.take(MsgType.HEARTBEAT_RESP))
    net.flush("a")
    assert net.read_states["a"] == [ReadState(leader.commit_index, b"r1")]


def test_read_index_waits_until_the_leader_committed_in_its_term() -> None:
    net = Net.of()
    net.campaign("a")
    for mtype in (MsgType.PRE_VOTE, MsgType.PRE_VOTE_RESP, MsgType.VOTE, MsgType.VOTE_RESP):
        net.deliver(net.take(mtype))
    leader = net.cores["a"]
    assert leader.role is Role.LEADER and leader.commit_index == 0
    leader.read_index(b"early")
    assert not any(m.context == b"early" for m in net.take(MsgType.HEARTBEAT))
    net.settle()
    assert net.read_states["a"] == [ReadState(1, b"early")]


def test_follower_read_index_is_answered_by_the_leader() -> None:
    net, leader = replicating_leader()
    net.cores["c"].read_index(b"via-c")
    [forward] = net.take(MsgType.READ_INDEX)
    assert forward.to == "a" and forward.context == b"via-c"
    net.deliver([forward])
    net.settle()
    assert net.read_states["c"] == [ReadState(leader.commit_index, b"via-c")]
    assert net.read_states.get("a", []) == []


def test_read_index_without_a_known_leader_is_dropped() -> None:
    core = make_core("b")
    core.read_index(b"lost")
    assert not core.has_ready()


def test_single_voter_answers_read_index_at_once() -> None:
    core = make_core("a", ("a",))
    for _ in range(20):
        core.tick()
    drain(core)
    drain(core)  # no-op committed
    core.read_index(b"now")
    assert drain(core).read_states == [ReadState(1, b"now")]


# --- snapshots -------------------------------------------------------------------------------


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


def test_laggard_receives_the_snapshot_in_chunks() -> None:
    data = bytes(range(256)) * 4  # 1024 bytes: chunks of 300, 300, 300 and 124
    net, leader = compacted_leader(300, data)
    follower = net.cores["c"]
    net.take()
    heartbeats = net.tick_until("a", MsgType.HEARTBEAT)
    net.deliver([m for m in heartbeats if m.to == "c"])
    net.deliver(net.take(MsgType.HEARTBEAT_RESP))
    chunks: list[Message] = []
    while "c" not in net.installed:
        [chunk] = net.take(MsgType.SNAP)  # one chunk in flight at a time
        assert len(chunk.data) <= 300 and len(chunks) < 4
        chunks.append(chunk)
        net.deliver([chunk])
        net.flush("c")
        net.deliver(net.take(MsgType.SNAP_RESP))
    assert [m.offset for m in chunks] == [0, 300, 600, 900]
    assert chunks[-1].done and not any(m.done for m in chunks[:-1])
    assert b"".join(m.data for m in chunks) == data
    [installed] = net.installed["c"]
    assert installed.data == data and installed.meta.index == 5
    net.settle()
    assert follower.last_index == leader.last_index
    assert follower.commit_index == leader.commit_index
    assert [e.index for e in net.applied["c"]] == [6]  # after the snapshot


class ReadCounting:
    """A ``SnapshotData`` twin of a snapshot file: bytes read by range, reads counted."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.reads: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, part: slice, /) -> bytes:
        start, stop, _ = part.indices(len(self._data))
        self.reads.append((start, stop))
        return self._data[part]


def test_a_leader_serving_from_a_file_sends_its_chunks_even_mid_transfer() -> None:
    data = bytes(range(256)) * 4
    net, leader = compacted_leader(300, data)
    assert not leader.serve_from(4, ReadCounting(data))  # not the snapshot's index
    assert not leader.serve_from(5, ReadCounting(data[:-1]))  # not its data
    net.take()
    heartbeats = net.tick_until("a", MsgType.HEARTBEAT)
    net.deliver([m for m in heartbeats if m.to == "c"])
    net.deliver(net.take(MsgType.HEARTBEAT_RESP))
    [first] = net.take(MsgType.SNAP)  # sent from the bytes the core held
    file = ReadCounting(data)
    assert leader.serve_from(5, file)
    served = leader.served_snapshot
    assert served is not None and served.data is file and served.meta.index == 5
    chunks = [first]
    net.deliver([first])
    while "c" not in net.installed:
        net.flush("c")
        net.deliver(net.take(MsgType.SNAP_RESP))
        sent = net.take(MsgType.SNAP)
        if not sent:
            continue
        chunks.extend(sent)
        net.deliver(sent)
    assert file.reads == [(300, 600), (600, 900), (900, 1024)]
    assert b"".join(m.data for m in chunks) == data
    [installed] = net.installed["c"]
    assert installed.data == data


def snap_chunk(offset: int, data: bytes, done: bool, index: int = 5, term: int = 1) -> Message:
    meta = SnapshotMeta(index, 1, ABC)
    return Message(
        MsgType.SNAP, "c", "a", term, snapshot_meta=meta, offset=offset, data=data, done=done
    )


def test_out_of_order_chunk_is_refused_and_the_transfer_resumes_cleanly() -> None:
    core = make_core("c")
    core.step(snap_chunk(0, b"aaa", False))
    [ok] = drain(core).messages
    assert (ok.offset, ok.reject) == (3, False)
    core.step(snap_chunk(6, b"ccc", True))  # chunk at 3 was lost
    [refused] = drain(core).messages
    assert (refused.offset, refused.reject) == (3, True)
    core.step(snap_chunk(3, b"bbb", False))
    core.step(snap_chunk(3, b"bbb", False))  # a duplicate changes nothing
    core.step(snap_chunk(6, b"ccc", True))
    rd = drain(core)
    assert rd.snapshot is not None and rd.snapshot.data == b"aaabbbccc"
    assert rd.hard_state is not None and rd.hard_state.commit == 5
    assert rd.messages[-1].type is MsgType.SNAP_RESP and rd.messages[-1].done


def test_snapshot_transfer_restarts_when_the_leaders_snapshot_changes() -> None:
    core = make_core("c")
    core.step(snap_chunk(0, b"old", False, index=5))
    core.step(snap_chunk(0, b"new", False, index=7))  # the leader compacted further meanwhile
    core.step(snap_chunk(3, b"!", True, index=5))  # rest of the old one: no longer wanted
    rd = drain(core)
    assert rd.snapshot is None
    assert [(m.offset, m.reject) for m in rd.messages] == [(3, False), (3, False), (0, True)]
    core.step(snap_chunk(3, b"er", True, index=7))
    rd = drain(core)
    assert rd.snapshot is not None and rd.snapshot.data == b"newer"
    assert rd.snapshot.meta.index == 7


def test_compaction_keeps_trailing_entries_for_a_follower_slightly_behind() -> None:
    net = Net.of(trailing_entries=3)
    leader = net.elect("a")
    for k in range(2):
        leader.propose(b"p%d" % k)
    net.settle()
    b = net.cores["b"]
    assert b.applied_index == 3
    net.isolated.add("b")
    for k in range(2, 5):
        leader.propose(b"p%d" % k)
    net.settle()
    assert leader.applied_index == 6
    snap = leader.compact(6, b"state")
    assert snap.meta.index == leader.snapshot_index == 6
    assert leader.term_at(4) == 1 and leader.term_at(2) is None  # 4..6 kept below it
    net.isolated.clear()
    for _ in range(5):
        net.heartbeat_round("a")
    # b, three entries behind, is sent entries rather than the snapshot.
    assert "b" not in net.installed
    assert b.applied_index == 6 and b.snapshot_index == 0


def test_compaction_drops_the_log_prefix_and_restart_reemits_committed_entries() -> None:
    _, leader = compacted_leader(1024, b"state")
    assert leader.status().snapshot_index == 5
    assert leader.term_at(4) is None and leader.term_at(6) == 1
    with pytest.raises(ValueError):
        leader.compact(4, b"older")
    with pytest.raises(ValueError):
        leader.compact(leader.applied_index + 1, b"future")

    snapshot = Snapshot(SnapshotMeta(5, 1, ABC), b"state")
    state = InitialState(HardState(1, "a", 7), snapshot, [Entry(6, 1, b"p4"), Entry(7, 1)])
    restarted = make_core("a", state=state)
    assert restarted.applied_index == 5 and restarted.commit_index == 7
    rd = drain(restarted)
    assert [e.index for e in rd.committed_entries] == [6, 7]
    assert rd.entries == [] and rd.snapshot is None


# --- robustness ------------------------------------------------------------------------------


def test_messages_for_others_from_strangers_or_malformed_are_ignored() -> None:
    core = make_core("b", state=log_state([(1, 1)], term=1))
    bad = [
        Message(MsgType.APP, "c", "a", 9),  # not for b
        Message(MsgType.APP_RESP, "b", "zz", 9),  # not a member
        Message(MsgType.APP, "b", "b", 9),  # from itself
        Message(MsgType.APP, "b", "a", 2, log_term=1, index=1, entries=[Entry(3, 2)]),  # gap
        Message(MsgType.APP, "b", "a", 2, log_term=1, index=1, entries=[Entry(2, 3)]),  # term
        Message(MsgType.SNAP, "b", "a", 2, snapshot_meta=None, data=b"x", done=True),
        Message(MsgType.APP_RESP, "b", "a", 1, index=1, reject=True, reject_hint=7),
    ]
    for msg in bad:
        core.step(msg)
    assert core.term == 1 and core.last_index == 1 and core.leader_id is None
    assert drain(core).messages == []


def test_wire_codec_round_trips_what_the_core_sends() -> None:
    net, leader = replicating_leader()
    leader.propose(b"payload")
    leader.read_index(b"ctx")
    for msg in net.take():
        assert Message.from_wire(msg.to_wire()) == msg


def test_only_one_ready_may_be_outstanding() -> None:
    core = make_core("a", ("a",))
    for _ in range(20):
        core.tick()
    rd = core.ready()
    assert not core.has_ready()
    with pytest.raises(RuntimeError):
        core.ready()
    core.advance(rd)
    with pytest.raises(RuntimeError):
        core.advance(rd)


def test_restarted_node_remembers_its_vote() -> None:
    core = make_core("b", state=InitialState(HardState(term=4, vote="a", commit=0)))
    core.step(Message(MsgType.VOTE, "b", "c", 4, log_term=0, index=0))
    [refusal] = drain(core).messages
    assert refusal.reject
    core.step(Message(MsgType.VOTE, "b", "a", 4, log_term=0, index=0))
    [grant] = drain(core).messages
    assert not grant.reject


def test_deposed_leader_steps_down_when_told_of_a_newer_term() -> None:
    net = Net.of()
    leader = net.elect("a")
    # b moved on to term 7 (say, it saw a newer election); a's heartbeat gets a reply.
    net.cores["b"].step(Message(MsgType.APP, "b", "c", 7, log_term=1, index=1))
    net.take()
    [heartbeat] = [m for m in net.tick_until("a", MsgType.HEARTBEAT) if m.to == "b"]
    net.deliver([heartbeat])
    [notice] = net.take(MsgType.APP_RESP)
    assert notice.term == 7
    net.deliver([notice])
    assert leader.role is Role.FOLLOWER and leader.term == 7


def test_heartbeat_commits_only_what_the_follower_acknowledged() -> None:
    net, leader = replicating_leader()
    net.isolated.add("c")
    index, _ = leader.propose(b"x")
    net.settle()
    assert leader.commit_index == index and net.cores["c"].commit_index < index
    [to_c] = [m for m in net.tick_until("a", MsgType.HEARTBEAT) if m.to == "c"]
    assert to_c.commit < index  # c never acknowledged the entry


def test_committed_entries_are_paced_per_ready() -> None:
    core = make_core("a", ("a",), max_committed_bytes_per_ready=50)
    for _ in range(20):
        core.tick()
    drain(core)
    drain(core)
    for k in range(6):
        core.propose(b"%04d" % k)  # 20 bytes each, counting overhead
    drain(core)
    batches = []
    while core.has_ready():
        batches.append([e.data for e in drain(core).committed_entries])
    assert batches == [[b"0000", b"0001"], [b"0002", b"0003"], [b"0004", b"0005"]]
