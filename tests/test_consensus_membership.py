"""Membership in the Raft core: learners, promotion, removal, leadership transfer, and the
configuration carried by the log and by snapshots. Driven message by message."""

from __future__ import annotations

import pytest

from raft3d.consensus import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    InitialState,
    Message,
    MsgType,
    NotLeaderError,
    RaftCore,
    Role,
    Snapshot,
    SnapshotMeta,
)
from raft3d.consensus.membership import (
    ConfChange,
    ConfChangeError,
    ConfChangeInProgressError,
    ConfChangeType,
    ConfTracker,
    LeadershipTransferError,
    MemberExistsError,
    NoCommitInTermError,
    NotAVoterError,
    UnknownMemberError,
    apply_change,
    decode_conf_entry,
    encode_conf_entry,
)
from tests.support.cores import ABC, Net, drain, make_core

ADD = ConfChangeType.ADD_LEARNER
PROMOTE = ConfChangeType.PROMOTE
REMOVE = ConfChangeType.REMOVE


def cluster_with_joiner(**settings: object) -> Net:
    """a, b, c voters (a leads, its no-op committed) and d, a fresh node that may join."""
    net = Net.of(**settings)  # type: ignore[arg-type]
    net.cores["d"] = make_core("d", (), seed=9, **settings)  # type: ignore[arg-type]
    net.elect("a")
    net.settle()
    return net


def add_learner(net: Net, node: str = "d", auto: bool = True) -> None:
    net.cores["a"].propose_conf_change(ConfChange(ADD, node, auto))
    net.settle()
    net.heartbeat_round("a")


def test_a_joining_node_learns_the_log_and_the_configuration_from_the_leader() -> None:
    net = cluster_with_joiner()
    leader = net.cores["a"]
    leader.propose(b"before")
    net.settle()
    add_learner(net, auto=False)
    d = net.cores["d"]
    expected = ConfState(ABC, ("d",), ("d",))
    assert d.conf_state == expected and leader.conf_state == expected
    assert d.last_index == leader.last_index and d.commit_index == leader.commit_index
    assert [e.data for e in net.applied["d"] if e.type is EntryType.NORMAL] == [b"before"]
    assert any(rd.conf_state == expected for rd in net.readies["d"])  # Ready tells the driver


def test_learner_is_not_counted_toward_commit() -> None:
    net = cluster_with_joiner()
    add_learner(net, auto=False)
    leader = net.cores["a"]
    net.isolated = {"b", "c"}
    index, _ = leader.propose(b"x")
    net.settle()
    assert net.cores["d"].last_index == index  # the learner holds it...
    assert leader.commit_index < index  # ...but leader + learner are no majority
    net.isolated = set()
    net.heartbeat_round("a")
    net.settle()
    assert leader.commit_index == index


def test_learner_never_campaigns_and_its_acks_do_not_keep_a_leader_in_office() -> None:
    net = cluster_with_joiner(check_quorum=True)
    add_learner(net, auto=False)
    d = net.cores["d"]
    for _ in range(100):
        d.tick()
    assert d.role is Role.FOLLOWER
    assert not [m for m in net.take() if m.frm == "d" and m.type is MsgType.PRE_VOTE]
    # Cut off from both other voters, the leader hears only the learner: it must step down.
    net.isolated = {"b", "c"}
    leader = net.cores["a"]
    for _ in range(60):
        leader.tick()
        net.settle()
        if leader.role is not Role.LEADER:
            break
    assert leader.role is Role.FOLLOWER


def test_learner_acks_do_not_release_reads() -> None:
    net = cluster_with_joiner()
    add_learner(net, auto=False)
    net.isolated = {"b", "c"}
    net.cores["a"].read_index(b"r1")
    net.settle()
    net.heartbeat_round("a")
    assert not net.read_states.get("a")
    net.isolated = set()
    net.heartbeat_round("a")
    assert [s.context for s in net.read_states["a"]] == [b"r1"]


def test_caught_up_learner_is_promoted_automatically() -> None:
    net = cluster_with_joiner()
    add_learner(net, auto=True)
    leader = net.cores["a"]
    for _ in range(5):
        net.heartbeat_round("a")
    assert leader.conf_state == ConfState(("a", "b", "c", "d"), (), ())
    assert all(core.conf_state.voters == ("a", "b", "c", "d") for core in net.cores.values())


def test_a_learner_that_never_answered_is_not_promoted_however_short_the_log() -> None:
    # d was added but never started: on a young log its match index (0) is "within the lag"
    # of the leader's, yet promoting it would make a dead voter (with 2 of 4 left, no quorum).
    net = cluster_with_joiner()
    net.isolated = {"d"}
    add_learner(net, auto=True)
    leader = net.cores["a"]
    assert leader.last_index <= leader._cfg.promote_lag  # the case that fooled the rule
    for _ in range(10):
        net.heartbeat_round("a")
        net.settle()
    assert leader.conf_state.learners == ("d",) and leader.conf_state.voters == ABC
    net.isolated = set()  # d comes up, catches up, and only then votes
    for _ in range(5):
        net.heartbeat_round("a")
        net.settle()
    assert leader.conf_state == ConfState(("a", "b", "c", "d"), (), ())


def test_manual_learner_waits_for_an_explicit_promotion() -> None:
    net = cluster_with_joiner()
    add_learner(net, auto=False)
    for _ in range(5):
        net.heartbeat_round("a")
    leader = net.cores["a"]
    assert leader.conf_state.learners == ("d",)
    leader.propose_conf_change(ConfChange(PROMOTE, "d"))
    net.settle()
    assert leader.conf_state == ConfState(("a", "b", "c", "d"))


def test_a_new_leader_refuses_changes_until_it_committed_in_its_term() -> None:
    net = Net.of()
    net.campaign("a")
    for _ in range(4):  # the votes come back; the no-op is not yet acknowledged
        net.deliver(net.take())
        if net.cores["a"].role is Role.LEADER:
            break
    leader = net.cores["a"]
    assert leader.role is Role.LEADER
    with pytest.raises(NoCommitInTermError):
        leader.propose_conf_change(ConfChange(REMOVE, "c"))
    net.settle()
    leader.propose_conf_change(ConfChange(REMOVE, "c"))


def test_only_one_change_at_a_time() -> None:
    net = cluster_with_joiner()
    leader = net.cores["a"]
    leader.propose_conf_change(ConfChange(ADD, "d"))
    with pytest.raises(ConfChangeInProgressError):
        leader.propose_conf_change(ConfChange(REMOVE, "c"))
    net.settle()
    net.heartbeat_round("a")
    leader.propose_conf_change(ConfChange(REMOVE, "c"))  # the first one committed


def test_changes_that_do_not_fit_are_refused() -> None:
    net = cluster_with_joiner()
    leader = net.cores["a"]
    with pytest.raises(MemberExistsError):
        leader.propose_conf_change(ConfChange(ADD, "b"))
    with pytest.raises(UnknownMemberError):
        leader.propose_conf_change(ConfChange(REMOVE, "zz"))
    with pytest.raises(UnknownMemberError):
        leader.propose_conf_change(ConfChange(PROMOTE, "zz"))
    with pytest.raises(NotLeaderError):
        net.cores["b"].propose_conf_change(ConfChange(ADD, "d"))
    with pytest.raises(NotAVoterError):
        leader.transfer_leadership("zz")
    assert leader.conf_state == ConfState(ABC)


def test_removed_node_stops_campaigning_and_cannot_disrupt() -> None:
    net = Net.of(pre_vote=False, check_quorum=False)
    net.elect("a")
    net.settle()
    leader = net.cores["a"]
    leader.propose_conf_change(ConfChange(REMOVE, "c"))
    net.settle()
    net.heartbeat_round("a")
    c = net.cores["c"]
    assert c.conf_state.voters == ("a", "b")
    for _ in range(100):
        c.tick()
    assert c.role is Role.FOLLOWER and not net.take(MsgType.VOTE)
    # A removed node that never heard of its removal campaigns: nobody even bumps its term.
    term = leader.term
    stale = Message(MsgType.VOTE, "b", "c", term + 5, log_term=term, index=c.last_index + 9)
    net.cores["b"].step(stale)
    assert net.cores["b"].term == term and not net.take(MsgType.VOTE_RESP)
    assert leader.role is Role.LEADER and leader.conf_state.voters == ("a", "b")
    index, _ = leader.propose(b"after")
    net.settle()
    assert leader.commit_index >= index  # the two remaining voters commit alone
    assert [p.node_id for p in leader.status().peers] == ["b"]  # c has been let go


def test_leader_that_removes_itself_hands_over_after_the_removal_commits() -> None:
    net = Net.of()
    net.elect("a")
    net.settle()
    leader = net.cores["a"]
    term = leader.term
    leader.propose_conf_change(ConfChange(REMOVE, "a"))
    assert leader.status().role is Role.LEADER  # still leads, but no longer counts itself
    net.settle()
    assert leader.role is Role.FOLLOWER
    # It sent TIMEOUT_NOW: a successor took over at once, without waiting for a timeout.
    new = [c for c in net.cores.values() if c.role is Role.LEADER]
    assert len(new) == 1 and new[0].term == term + 1
    assert new[0].conf_state.voters == ("b", "c")
    for _ in range(100):
        leader.tick()
    assert leader.role is Role.FOLLOWER  # a removed node never campaigns


def test_leadership_transfer_stops_proposals_and_the_target_takes_over() -> None:
    net = Net.of(check_quorum=True, pre_vote=True)
    net.elect("a")
    net.settle()
    leader = net.cores["a"]
    net.isolated = {"b"}
    leader.propose(b"b lacks this")
    net.settle()
    leader.transfer_leadership("b")
    with pytest.raises(LeadershipTransferError):
        leader.propose(b"refused")
    assert not net.take(MsgType.TIMEOUT_NOW)  # b is behind: brought up to date first
    net.isolated = set()
    net.heartbeat_round("a")
    for _ in range(10):
        msgs = net.take()
        if not msgs:
            break
        votes = [m for m in msgs if m.type is MsgType.VOTE]
        assert all(m.context == b"transfer" for m in votes)
        assert not [m for m in msgs if m.type is MsgType.PRE_VOTE]
        net.deliver(msgs)
    b = net.cores["b"]
    # c heard from the leader a moment ago (leader lease), yet voted: the flag says why.
    assert b.role is Role.LEADER and leader.role is Role.FOLLOWER
    assert b.term == 2 and b.leader_id == "b"


def test_leadership_transfer_gives_up_after_an_election_timeout() -> None:
    net = Net.of()
    net.elect("a")
    net.settle()
    leader = net.cores["a"]
    net.isolated = {"b"}
    leader.propose(b"x")
    net.settle()
    leader.transfer_leadership("b")
    assert leader.status().transferring_to == "b"
    for _ in range(10):
        leader.tick()
        net.settle()
    assert leader.transfer_target is None and leader.role is Role.LEADER
    leader.propose(b"accepted again")


def test_snapshot_carries_the_configuration() -> None:
    net = cluster_with_joiner()
    add_learner(net, auto=False)
    leader = net.cores["a"]
    snap = leader.compact(leader.applied_index, b"state")
    assert snap.meta.conf_state == ConfState(ABC, ("d",), ("d",))
    wired = Message.from_wire(Message(MsgType.SNAP, "e", "a", 1, snapshot_meta=snap.meta).to_wire())
    assert wired.snapshot_meta == snap.meta
    restored = make_core("e", (), InitialState(HardState(1, None, snap.meta.index), snap, []))
    assert restored.conf_state == snap.meta.conf_state and restored.conf_index == snap.meta.index


def test_configuration_is_recovered_from_the_log() -> None:
    new = ConfState(ABC, ("d",))
    data = encode_conf_entry(ConfChange(ADD, "d"), new)
    assert decode_conf_entry(data)[1] == new
    entries = [Entry(1, 1, b"", EntryType.NOOP), Entry(2, 1, data, EntryType.CONF_CHANGE)]
    core = make_core("b", ABC, InitialState(HardState(1, None, 1), None, entries))
    assert core.conf_state == new and core.conf_index == 2
    old = Snapshot(SnapshotMeta(5, 1, ("a", "b")), b"")  # a snapshot from before learners
    core = make_core("b", ABC, InitialState(HardState(1, None, 5), old, []))
    assert core.conf_state == ConfState(("a", "b"))


def test_configuration_reverts_when_its_entry_is_truncated() -> None:
    b: RaftCore = make_core("b", ABC, InitialState(HardState(1, None, 0), None, []))
    change = encode_conf_entry(ConfChange(REMOVE, "c"), ConfState(("a", "b")))
    b.step(
        Message(
            MsgType.APP,
            "b",
            "a",
            1,
            entries=[Entry(1, 1, b"", EntryType.NOOP), Entry(2, 1, change, EntryType.CONF_CHANGE)],
        )
    )
    assert b.conf_state.voters == ("a", "b")  # in effect as soon as it is appended
    drain(b)
    # A new leader of term 2 never had entry 2: it replaces it, and the change is undone.
    b.step(Message(MsgType.APP, "b", "c", 2, log_term=1, index=1, entries=[Entry(2, 2)]))
    assert b.term_at(2) == 2 and b.conf_state == ConfState(ABC)
    assert drain(b).conf_state == ConfState(ABC)


def test_a_stale_node_votes_for_a_voter_it_does_not_know_yet_when_there_is_no_leader() -> None:
    # c never received the entries that added and promoted d; without a leader around, d
    # may need c's vote (d's configuration counts it), so c must answer.
    c = make_core("c", ABC)
    c.step(Message(MsgType.VOTE, "c", "d", 3, log_term=2, index=10))
    answers = [(m.type, m.to, m.reject) for m in drain(c).messages]
    assert c.term == 3 and answers == [(MsgType.VOTE_RESP, "d", False)]


def test_a_node_that_missed_its_removal_cannot_depose_a_live_leader_even_without_pre_vote() -> None:
    # b never learned that c was removed, so c still counts as a voter for b; c campaigns
    # with ever higher terms. While b hears from the leader it ignores c (leader stickiness),
    # with or without check-quorum.
    net = Net.of(pre_vote=False, check_quorum=False)
    leader = net.elect("a")
    net.settle()
    b = net.cores["b"]
    term = leader.term
    b.step(Message(MsgType.VOTE, "b", "c", term + 3, log_term=term, index=b.last_index + 5))
    assert b.term == term and b.leader_id == "a" and not net.take(MsgType.VOTE_RESP)


def test_a_stale_leader_is_told_the_newer_term_even_without_pre_vote_or_check_quorum() -> None:
    # Its followers may ignore the votes that would otherwise depose it: the answer to its
    # own messages is then the only way it learns.
    b = make_core(
        "b", ABC, InitialState(HardState(5, None, 0), None, []), pre_vote=False, check_quorum=False
    )
    b.step(Message(MsgType.HEARTBEAT, "b", "a", 3))
    answers = [(m.type, m.to, m.term) for m in drain(b).messages]
    assert answers == [(MsgType.APP_RESP, "a", 5)]


def conf_entry(index: int, state: ConfState) -> Entry:
    change = ConfChange(ADD, state.members[-1])
    return Entry(index, 1, encode_conf_entry(change, state), EntryType.CONF_CHANGE)


def test_tracker_follows_appends_truncations_compaction_and_restore() -> None:
    base = ConfState(ABC)
    two = ConfState(ABC, ("d",))
    three = ConfState(ABC, ("d", "e"))
    tracker = ConfTracker(base, 0)
    assert not tracker.on_entries([Entry(1, 1), Entry(2, 1, b"", EntryType.NOOP)])
    assert tracker.on_entries([conf_entry(3, two), Entry(4, 1), conf_entry(5, three)])
    assert (tracker.current, tracker.index) == (three, 5)
    assert [tracker.state_at(i) for i in (2, 3, 4, 5, 9)] == [base, two, two, three, three]
    assert tracker.truncate_from(5) and (tracker.current, tracker.index) == (two, 3)
    assert not tracker.truncate_from(4)
    tracker.compact(4)
    assert (tracker.current, tracker.index, tracker.state_at(1)) == (two, 3, two)
    tracker.restore(base, 20)
    assert (tracker.current, tracker.index) == (base, 20)


def test_a_malformed_configuration_entry_changes_nothing() -> None:
    tracker = ConfTracker(ConfState(ABC), 0)
    assert not tracker.on_entries([Entry(1, 1, b"\xc1garbage", EntryType.CONF_CHANGE)])
    assert tracker.current == ConfState(ABC)
    with pytest.raises(ValueError, match="malformed"):
        decode_conf_entry(b"\x93\x01\x02\x03")


def test_removing_the_last_voter_is_refused() -> None:
    with pytest.raises(ConfChangeError, match="last voter"):
        apply_change(ConfState(("a",), ("b",)), ConfChange(REMOVE, "a"))
    assert apply_change(ConfState(("a",), ("b",)), ConfChange(REMOVE, "b")) == ConfState(("a",))
