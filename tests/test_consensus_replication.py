"""Unit tests of the Raft core's log replication, driven message by message: what a leader
appends and sends, what a follower keeps, and how a lost link is noticed."""

from __future__ import annotations

import random

from raft3d.config import RaftSettings
from raft3d.consensus import (
    Entry,
    EntryType,
    InitialState,
    Message,
    MsgType,
    RaftCore,
    Role,
)
from raft3d.node.wiring import core_config
from tests.support.cores import (
    ABC,
    Net,
    compacted_leader,
    drain,
    log_state,
    make_core,
    replicating_leader,
)

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
