"""Recovery mode: a node that lost its log neither votes nor campaigns, nor helps commit,
until a leader confirmed by the other voters has brought it back up to date."""

from __future__ import annotations

from raft3d.consensus import TRANSFER_CONTEXT, EntryType, Message, MsgType, RaftCore, Role
from raft3d.consensus.recovery import RECOVERY_CONTEXT_PREFIX
from tests.support.cores import ABC, Net, drain, make_core


def wipe(net: Net, node: str, seed: int = 7) -> RaftCore:
    """``node`` restarts with an empty data directory, in recovery mode."""
    core = net.cores[node] = make_core(node, ABC, seed=seed, recovering=True)
    net.outbox = [m for m in net.outbox if m.frm != node]  # its old process is gone
    for record in (net.applied, net.readies, net.installed, net.read_states):
        record.pop(node, None)
    return core


def sent_by(net: Net, node: str) -> list[Message]:
    return [m for rd in net.readies.get(node, []) for m in rd.messages]


def payloads(net: Net, node: str) -> list[bytes]:
    return [e.data for e in net.applied.get(node, []) if e.type is EntryType.NORMAL]


def test_the_issue_scenario_loses_nothing() -> None:
    """C down, W acknowledged by A and B, A stopped, B killed, A's log emptied, A and C
    started: A must not vote C (which lacks W) into office; once B is back W survives."""
    net = Net.of()
    net.elect("a")
    net.isolated.add("c")
    net.cores["a"].propose(b"W")
    net.settle()
    assert net.cores["a"].commit_index == 2 and net.cores["b"].term_at(2) == 1
    net.isolated = {"b"}  # B killed; A restarts wiped; C starts
    a = wipe(net, "a")
    c = net.cores["c"]
    assert a.recovering and a.status().recovering
    for _ in range(10):
        net.campaign("c")
        net.settle()
        assert c.role is not Role.LEADER
        for _ in range(40):
            a.tick()
        net.settle()
        assert a.role is Role.FOLLOWER and a.term <= c.term
    net.isolated.clear()  # B is back: it wins (C votes for it), A recovers from it
    for _ in range(100):
        net.tick("b")
        net.settle()
        if net.cores["b"].role is Role.LEADER:
            break
    leader = net.cores["b"]
    assert leader.role is Role.LEADER
    for _ in range(3):
        net.heartbeat_round("b")
    assert not a.status().recovering
    assert [rd.recovered for rd in net.readies["a"]].count(True) == 1
    assert b"W" in payloads(net, "a") and b"W" in payloads(net, "c")
    assert a.commit_index == leader.commit_index == c.commit_index


def test_a_recovering_node_rejects_every_vote_and_pre_vote() -> None:
    a = make_core("a", ABC, recovering=True)
    a.step(Message(MsgType.PRE_VOTE, "a", "b", 1, log_term=5, index=50))
    replies = drain(a).messages
    a.step(Message(MsgType.VOTE, "a", "c", 1, log_term=5, index=50, context=TRANSFER_CONTEXT))
    replies += drain(a).messages
    assert [(m.type, m.to, m.reject) for m in replies] == [
        (MsgType.PRE_VOTE_RESP, "b", True),
        (MsgType.VOTE_RESP, "c", True),
    ]
    assert a.vote is None and a.term == 1


def test_a_recovering_node_never_campaigns_even_when_told_to() -> None:
    net = Net.of()
    net.elect("a")
    b = net.cores["b"]
    b.begin_recovery()
    b.step(Message(MsgType.TIMEOUT_NOW, "b", "a", 1))
    for _ in range(100):
        b.tick()
    assert (
        b.role is Role.FOLLOWER
        and b.term == 1
        and not any(m.type in (MsgType.VOTE, MsgType.PRE_VOTE) for m in net.take())
    )


def test_a_leader_cannot_commit_with_a_recovering_node_alone() -> None:
    """Its acknowledgements stop at the leader's commit index, and its heartbeat answers
    confirm no read: a stale leader reaching only it cannot commit nor serve reads."""
    net = Net.of()
    leader = net.elect("a")
    net.settle()
    wipe(net, "b")
    net.isolated.add("c")
    leader.propose(b"x")
    leader.read_index(b"r")
    for _ in range(5):
        net.heartbeat_round("a")
    b = net.cores["b"]
    assert b.last_index == leader.last_index == 2  # b holds the entry...
    assert leader.commit_index == 1 and b.recovering  # ...but it was not committed
    assert not net.read_states.get("a")
    assert all(m.index <= 1 for m in sent_by(net, "b") if m.type is MsgType.APP_RESP)


def test_recovery_ends_once_a_confirmed_leader_s_commit_is_durable() -> None:
    net = Net.of()
    leader = net.elect("a")
    for k in range(3):
        leader.propose(b"w%d" % k)
    net.settle()
    b = wipe(net, "b")
    net.heartbeat_round("a")
    asks = [m for m in sent_by(net, "b") if m.type is MsgType.READ_INDEX]
    assert asks and asks[0].context.startswith(RECOVERY_CONTEXT_PREFIX)
    for _ in range(3):
        net.heartbeat_round("a")
    assert not b.recovering and not b.status().recovering
    assert b.commit_index == leader.commit_index == 4
    flips = [rd for rd in net.readies["b"] if rd.recovered]
    assert len(flips) == 1 and flips[0].hard_state is not None
    assert flips[0].hard_state.vote == "a" == b.vote  # it cannot vote anyone else in term 1
    assert not net.read_states.get("b")  # the recovery read is not handed to the driver
    # Recovered, it votes again (here for a transfer target of a later term).
    b.step(Message(MsgType.VOTE, "b", "c", 2, log_term=1, index=4, context=TRANSFER_CONTEXT))
    assert [(m.type, m.reject) for m in drain(b).messages] == [(MsgType.VOTE_RESP, False)]


def test_recovery_waits_for_the_entries_to_be_durable() -> None:
    net = Net.of()
    leader = net.elect("a")
    leader.propose(b"w")
    net.settle()
    b = wipe(net, "b")
    for _ in range(4):
        net.heartbeat_round("a")  # the answer may arrive before b's log is on disk
        for rd in net.readies.get("b", []):
            if rd.recovered:
                break
    assert not b.recovering
    first = next(k for k, rd in enumerate(net.readies["b"]) if rd.recovered)
    persisted = [e.index for rd in net.readies["b"][: first + 1] for e in rd.entries]
    assert max(persisted) >= 2  # the Ready that reports it comes with or after the entries


def test_the_leader_forgets_what_a_recovering_node_acknowledged_before_its_loss() -> None:
    net = Net.of()
    leader = net.elect("a")
    net.settle()
    net.isolated.add("c")
    leader.propose(b"x")
    rd = leader.ready()  # the leader's own write of entry 2 is still in progress
    net.deliver([m for m in rd.messages if m.to == "b"])
    net.deliver(net.take(MsgType.APP_RESP))  # b stored entry 2 and acknowledged it...
    assert leader.commit_index == 1
    wipe(net, "b")  # ...then lost its disk, restarted and asked for its read point
    leader.step(Message(MsgType.READ_INDEX, "a", "b", 1, context=RECOVERY_CONTEXT_PREFIX + b"1"))
    leader.advance(rd)
    assert leader.commit_index == 1  # b's old acknowledgement of 2 no longer counts
    peer = next(p for p in leader.status().peers if p.node_id == "b")
    assert peer.match_index == 1


def test_a_recovering_node_catches_up_through_a_snapshot() -> None:
    net = Net.of()
    leader = net.elect("a")
    for k in range(4):
        leader.propose(b"w%d" % k)
    net.settle()
    net.heartbeat_round("a")
    leader.compact(leader.applied_index, b"state")
    b = wipe(net, "b")
    for _ in range(4):
        net.heartbeat_round("a")
    assert net.installed["b"] and not b.recovering
    assert b.commit_index == leader.commit_index


def test_a_leader_told_it_lost_its_log_steps_down_and_recovers_from_the_next_leader() -> None:
    net = Net.of()
    a = net.elect("a")
    a.propose(b"w")
    net.settle()
    a.begin_recovery()
    assert a.role is Role.FOLLOWER and a.status().recovering
    leaders: list[str] = []
    for _ in range(200):
        net.tick("b")
        net.tick("c")
        net.settle()
        leaders = [n for n in ("b", "c") if net.cores[n].role is Role.LEADER]
        if leaders:
            break
    assert leaders and a.role is Role.FOLLOWER
    for _ in range(3):
        net.heartbeat_round(leaders[0])
    assert not a.status().recovering and a.vote == a.leader_id == leaders[0]


def test_an_answer_to_an_older_request_or_term_does_not_end_recovery() -> None:
    net = Net.of()
    leader = net.elect("a")
    net.settle()
    b = wipe(net, "b")
    net.isolated.add("c")  # the leader cannot confirm itself: no answer comes
    net.heartbeat_round("a")
    asks = [m for m in sent_by(net, "b") if m.type is MsgType.READ_INDEX]
    assert asks and b.status().recovering
    stale = RECOVERY_CONTEXT_PREFIX + b"0.0"
    b.step(Message(MsgType.READ_INDEX_RESP, "b", "a", 1, index=0, context=stale))
    drain(b)
    assert b.status().recovering and leader.role is Role.LEADER
