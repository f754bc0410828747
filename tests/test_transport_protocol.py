"""raft3d.transport's wire protocol in detail: frame MACs and layout, handshake proofs, drop
reasons, and frames split at any byte boundary."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
from collections.abc import Callable

import pytest

from raft3d.consensus.types import Message
from raft3d.transport import DROP_REASONS, Transport, wire
from raft3d.transport.inbound import InboundConnection
from raft3d.transport.proposals import Forwarding
from raft3d.transport.stats import TransportStats
from tests.support.transports import (
    LOCAL,
    SECRET,
    message,
)

# ---------------------------------------------------------------- protocol details


def test_frame_mac_is_hmac_sha256_truncated() -> None:
    for key in (b"k", b"x" * 32, b"y" * 64, b"z" * 100):
        data = os.urandom(100)
        expected = hmac.new(key, data, hashlib.sha256).digest()[:16]
        assert wire.FrameMac(key)(data) == expected


def test_data_frame_layout_and_sequence() -> None:
    key = os.urandom(32)
    sealer = wire.FrameSealer(key)
    first, second = sealer.seal(b"one"), sealer.seal(b"two")
    body = first[4:]
    assert int.from_bytes(first[:4], "big") == len(body) == 16 + 8 + 3
    assert body[16:24] == (1).to_bytes(8, "big") and second[20:28] == (2).to_bytes(8, "big")
    assert body[:16] == hmac.new(key, body[16:], hashlib.sha256).digest()[:16]
    opener = wire.FrameOpener(key)
    assert bytes(opener.open(memoryview(body))) == b"one"
    assert bytes(opener.open(memoryview(second[4:]))) == b"two"
    with pytest.raises(wire.ProtocolViolation) as replay:
        opener.open(memoryview(second[4:]))
    assert replay.value.reason == "replay"
    with pytest.raises(wire.ProtocolViolation) as forged:
        wire.FrameOpener(os.urandom(32)).open(memoryview(body))
    assert forged.value.reason == "bad_mac"


def test_proofs_are_bound_to_direction_ids_and_nonces() -> None:
    n1, n2 = os.urandom(32), os.urandom(32)
    t = wire.transcript("a", "b", n1, n2)
    assert wire.dialer_proof(SECRET, t) != wire.acceptor_proof(SECRET, t)
    assert wire.dialer_proof(SECRET, t) != wire.dialer_proof(
        SECRET, wire.transcript("b", "a", n1, n2)
    )
    assert wire.dialer_proof(SECRET, t) != wire.dialer_proof(
        SECRET, wire.transcript("a", "b", n2, n1)
    )
    assert wire.dialer_proof(SECRET, t) != wire.dialer_proof(b"other", t)
    assert wire.session_key(SECRET, t) not in (
        wire.dialer_proof(SECRET, t),
        wire.acceptor_proof(SECRET, t),
    )


def test_every_documented_drop_reason_starts_at_zero() -> None:
    transport = Transport("a", (LOCAL, 0), {}, SECRET, lambda _m: None)
    assert dict(transport.dropped) == dict.fromkeys(DROP_REASONS, 0)


def test_constructor_rejects_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        Transport("a", (LOCAL, 0), {}, b"", lambda _m: None)


class _FakeAcceptorContext:
    def __init__(self) -> None:
        self.node_id = "n1"
        self.secret = SECRET
        self.max_frame_bytes = 1 << 20
        self.handshake_timeout = 5.0
        self.stats = TransportStats()
        self.inbox: list[Message] = []
        self.deliver: Callable[[Message], None] = self.inbox.append
        self.deliver_forward: Callable[[Forwarding], None] | None = None
        self.accepting = True

    def is_peer(self, node_id: str) -> bool:
        return node_id == "n2"

    def inbound_authenticated(self, peer_id: str, conn: InboundConnection) -> None:
        pass

    def inbound_closed(self, conn: InboundConnection) -> None:
        pass

    def handshake_info(self) -> wire.HandshakeInfo | None:
        return None

    def peer_info(self, peer_id: str, info: wire.HandshakeInfo | None) -> bool:
        return True


class _FakeSocketTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True


async def test_frames_split_at_any_byte_boundary_are_reassembled() -> None:
    ctx = _FakeAcceptorContext()
    conn = InboundConnection(ctx)
    fake = _FakeSocketTransport()
    conn.connection_made(fake)
    nonce = os.urandom(wire.NONCE_BYTES)
    conn.data_received(wire.encode_hello("n2", nonce))
    challenge = bytes(fake.written[4:])
    acceptor_id, acceptor_nonce = wire.decode_challenge(challenge)
    t = wire.transcript("n2", acceptor_id, nonce, acceptor_nonce)
    sealer = wire.FrameSealer(wire.session_key(SECRET, t))
    msgs = [message("n2", "n1", i) for i in range(300)]
    stream = wire.encode_proof(wire.dialer_proof(SECRET, t)) + b"".join(
        sealer.seal(m.to_wire()) for m in msgs
    )
    rng = random.Random(7)
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 5, 17, 64, 1000])
        conn.data_received(stream[pos : pos + step])
        pos += step
    assert ctx.inbox == msgs
    assert not fake.aborted
    assert sum(ctx.stats.dropped.values()) == 0
    conn.close()
