"""Forwarded proposals and their answers on the peer protocol: the codec, and real loopback
transports carrying them in the same authenticated frames as Raft messages."""

from __future__ import annotations

import time

import pytest

from raft3d.consensus.types import Entry, Message, MsgType
from raft3d.transport import Transport, stats
from raft3d.transport import proposals as codec
from raft3d.transport.proposals import ForwardedProposal, Forwarding, ProposalAnswer
from tests.support.waiting import eventually

LOCAL = "127.0.0.1"
SECRET = b"forwarding-test-cluster-secret"


def test_the_codec_round_trips_both_kinds() -> None:
    sent = ForwardedProposal("a", "b", 41, b"\x00command", time.monotonic() + 2)
    got = codec.decode(sent.to_wire())
    assert isinstance(got, ForwardedProposal)
    assert (got.to, got.frm, got.proposal_id, got.data) == ("a", "b", 41, b"\x00command")
    assert 1000 < got.budget_ms <= 2000  # what was left of the deadline, in ms
    answer = ProposalAnswer("b", "a", 41, 17, 3, "", "", 0)
    assert codec.decode(answer.to_wire()) == answer
    refusal = ProposalAnswer("b", "a", 42, refusal=codec.NOT_LEADER, leader_id="c")
    assert codec.decode(refusal.to_wire()) == refusal


def test_raft_messages_are_told_apart_from_forwarding() -> None:
    msg = Message(MsgType.APP, "a", "b", 3, entries=[Entry(1, 3, b"\xc1\x01")])
    raw = msg.to_wire()
    assert raw[0] != codec.FORWARD_MARK
    assert codec.decode(raw) == msg


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1",
        b"\xc1\x01",
        b"\xc1\x09\x90",  # unknown kind
        b"\xc1\x01\x93\x01\x02\x03",  # wrong arity
        bytes((0xC1, 1)) + ForwardedProposal("a", "b", 1, b"x").to_wire()[2:-1],  # truncated
        bytes((0xC1, 2)) + b"\x98\xa1a\xa1b\x01\x01\x01\xa3bad\xa0\x00",  # unknown refusal
        bytes((0xC1, 2)) + b"\x98\xa1a\xa1b\xff\x01\x01\xa0\xa0\x00",  # negative id
    ],
)
def test_malformed_forwarding_payloads_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        codec.decode(raw)


async def test_forwarding_travels_over_authenticated_links() -> None:
    inbox_a: list[Forwarding] = []
    inbox_b: list[Forwarding] = []
    raft_b: list[Message] = []
    a = Transport("a", (LOCAL, 0), {"b": (LOCAL, 1)}, SECRET, lambda m: None,
                  on_forward=inbox_a.append, backoff_max=0.1)  # fmt: skip
    b = Transport("b", (LOCAL, 0), {"a": (LOCAL, 1)}, SECRET, raft_b.append,
                  on_forward=inbox_b.append, backoff_max=0.1)  # fmt: skip
    await a.start()
    await b.start()
    try:
        a.set_peer_address("b", (LOCAL, b.port))
        b.set_peer_address("a", (LOCAL, a.port))
        await eventually(lambda: a.reachable("b") and b.reachable("a"), 10, "links up")
        raft = Message(MsgType.HEARTBEAT, "b", "a", 2)
        a.send(ForwardedProposal("b", "a", 1, b"cmd", time.monotonic() + 5))
        a.send(raft)
        # A proposal whose proposer gave up while it was queued is never sent.
        a.send(ForwardedProposal("b", "a", 2, b"late", time.monotonic() - 1))
        # One claiming to come from another node than the link's is dropped.
        a.send(ForwardedProposal("b", "c", 3, b"forged", time.monotonic() + 5))
        await eventually(lambda: raft_b == [raft] and len(inbox_b) == 1, 10, "delivery")
        [got] = inbox_b
        assert isinstance(got, ForwardedProposal)
        assert (got.frm, got.proposal_id, got.data) == ("a", 1, b"cmd")
        assert 0 < got.budget_ms <= 5000
        assert a.dropped[stats.EXPIRED] == 1
        await eventually(lambda: b.dropped[stats.WRONG_SENDER] == 1, 10, "the forgery dropped")
        b.send(ProposalAnswer("a", "b", 1, 9, 2))
        await eventually(lambda: inbox_a == [ProposalAnswer("a", "b", 1, 9, 2)], 10, "answer")
    finally:
        await a.stop()
        await b.stop()


async def test_a_transport_without_a_forwarding_receiver_drops_them_as_malformed() -> None:
    inbox: list[Message] = []
    a = Transport("a", (LOCAL, 0), {"b": (LOCAL, 1)}, SECRET, lambda m: None, backoff_max=0.1)
    b = Transport("b", (LOCAL, 0), {"a": (LOCAL, 1)}, SECRET, inbox.append, backoff_max=0.1)
    await a.start()
    await b.start()
    try:
        a.set_peer_address("b", (LOCAL, b.port))
        await eventually(lambda: a.reachable("b"), 10, "link up")
        a.send(ForwardedProposal("b", "a", 1, b"cmd", time.monotonic() + 5))
        a.send(Message(MsgType.HEARTBEAT, "b", "a", 2))
        await eventually(lambda: len(inbox) == 1, 10, "the raft message")
        assert b.received == 1
        assert b.dropped[stats.MALFORMED] == 1  # the proposal had no taker
    finally:
        await a.stop()
        await b.stop()
