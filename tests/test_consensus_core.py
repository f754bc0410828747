"""Unit tests of specific behaviours of the Raft core, driven message by message: elections,
proposals, ReadIndex and robustness (replication and snapshots have files of their own)."""

from __future__ import annotations

import pytest

from raft3d.consensus import (
    Entry,
    EntryTooLargeError,
    EntryType,
    HardState,
    InitialState,
    Message,
    MsgType,
    NotLeaderError,
    ReadState,
    Role,
)
from tests.support.cores import (
    Net,
    drain,
    log_state,
    make_core,
    replicating_leader,
)

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
