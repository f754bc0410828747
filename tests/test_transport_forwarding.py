"""Forwarded proposals and their answers on the peer protocol: the codec, and real loopback
transports carrying them in the same authenticated frames as Raft messages."""

from __future__ import annotations

import time
from collections import deque

import msgpack
import pytest

from raft3d.consensus.types import Entry, Message, MsgType
from raft3d.transport import Transport, stats, wire
from raft3d.transport import proposals as codec
from raft3d.transport.outbound import LinkSettings, PeerLink
from raft3d.transport.proposals import ForwardedProposal, Forwarding, PeerMessage, ProposalAnswer
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


# ---------------------------------------------------------------- grouped frames


def test_grouped_frames_round_trip_both_kinds() -> None:
    deadline = time.monotonic() + 2
    sent = [ForwardedProposal("a", "b", i, b"cmd%d" % i, deadline) for i in (1, 2, 3)]
    got = codec.decode_all(codec.encode_group(sent))
    assert [(p.to, p.frm, p.proposal_id, p.data) for p in got] == [  # type: ignore[union-attr]
        ("a", "b", i, b"cmd%d" % i) for i in (1, 2, 3)
    ]
    assert all(1000 < p.budget_ms <= 2000 for p in got)  # type: ignore[union-attr]
    answers = [
        ProposalAnswer("b", "a", 1, 17, 3),
        ProposalAnswer("b", "a", 2, refusal=codec.NOT_LEADER, leader_id="c"),
        ProposalAnswer("b", "a", 3, refusal=codec.TOO_LARGE, limit=1024),
    ]
    assert codec.decode_all(codec.encode_group(answers)) == answers
    # A single message's payload, Raft's or forwarding's, is one message.
    raft = Message(MsgType.HEARTBEAT, "a", "b", 2)
    assert codec.decode_all(raft.to_wire()) == [raft]
    assert codec.decode_all(answers[0].to_wire()) == [answers[0]]


def _grouped(kind: int, items: object) -> bytes:
    packed: bytes = msgpack.packb(["a", "b", items], use_bin_type=True)
    return bytes((0xC1, kind)) + packed


@pytest.mark.parametrize(
    "raw",
    [
        _grouped(3, []),  # empty
        _grouped(3, [[1, 10]]),  # wrong arity
        _grouped(3, [[1, 10, "not bytes"]]),
        _grouped(3, [[-1, 10, b"x"]]),
        _grouped(3, (1, 10, b"x")),  # items not a list of lists
        _grouped(4, [[1, 2, 3, "bad", "", 0]]),  # unknown refusal
        _grouped(4, [[1, 2, 3, "", ""]]),
        bytes((0xC1, 3)) + msgpack.packb(["a", [[1, 10, b"x"]]]),  # no sender
        _grouped(3, [[1, 10, b"x"]])[:-1],  # truncated
    ],
)
def test_malformed_grouped_payloads_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        codec.decode_all(raw)


def _link() -> tuple[PeerLink, stats.TransportStats]:
    settings = LinkSettings("a", SECRET, 1 << 20, 1000, 1.0, 1.0, 1.0, 0.1, 0.1)
    counters = stats.TransportStats()
    return PeerLink("b", (LOCAL, 1), settings, counters, lambda peer, up: None), counters


def _frames(batch: bytes) -> list[list[PeerMessage]]:
    """The messages of each frame of ``batch``, as the peer decodes them."""
    frames, pos = [], 0
    while pos < len(batch):
        length = wire.frame_length(batch[pos : pos + wire.LENGTH_BYTES])
        body = batch[pos + wire.LENGTH_BYTES : pos + wire.LENGTH_BYTES + length]
        frames.append(codec.decode_all(bytes(body[wire.DATA_HEADER_BYTES :])))
        pos += wire.LENGTH_BYTES + length
    return frames


def test_a_link_sends_what_was_queued_together_as_one_frame_per_kind() -> None:
    link, counters = _link()
    later = time.monotonic() + 5
    raft = Message(MsgType.HEARTBEAT, "b", "a", 2)
    queued: list[PeerMessage] = [
        *(ForwardedProposal("b", "a", i, b"p%d" % i, later) for i in range(1, 6)),
        raft,
        ForwardedProposal("b", "a", 6, b"p6", later),
        ForwardedProposal("b", "a", 7, b"gave up", time.monotonic() - 1),
        ForwardedProposal("b", "a", 8, b"p8", later),
        ForwardedProposal("b", "c", 9, b"forged", later),  # another sender: its own frame
        *(ProposalAnswer("b", "a", i, i, 1) for i in range(1, 4)),
    ]
    for msg in queued:
        assert link.enqueue(msg)
    frames = _frames(link._seal_batch(wire.FrameSealer(b"k" * 32)))
    ids = [[0 if isinstance(m, Message) else m.proposal_id for m in f] for f in frames]
    assert ids == [[1, 2, 3, 4, 5], [0], [6, 8], [9], [1, 2, 3]]
    assert frames[1] == [raft]
    assert [type(m) for m in frames[4]] == [ProposalAnswer] * 3
    assert counters.sent == 12  # messages, in 5 frames
    assert counters.dropped[stats.EXPIRED] == 1


def test_a_group_is_split_where_a_frame_would_grow_too_large() -> None:
    later = time.monotonic() + 5
    queue: deque[PeerMessage] = deque(
        ForwardedProposal("b", "a", i, b"x" * 400, later) for i in range(2, 6)
    )
    first = ForwardedProposal("b", "a", 1, b"x" * 400, later)
    group, expired = codec.take_group(first, queue, 1000)
    assert [p.proposal_id for p in group] == [1, 2]
    assert len(codec.encode_group(group)) <= 1000
    assert expired == 0
    assert [m.proposal_id for m in queue] == [3, 4, 5]  # type: ignore[union-attr]
