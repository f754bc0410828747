"""The accepting side of a peer connection: handshake, then authenticated frames in.

A plain ``asyncio.Protocol``: frames are parsed straight out of ``data_received`` (many per
read, no task per connection), and a length prefix is checked as soon as its four bytes
arrive, so an oversized frame is refused before any of its body is buffered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Protocol, cast

from raft3d.consensus.types import Message
from raft3d.transport import proposals, stats, wire
from raft3d.transport.proposals import Forwarding
from raft3d.transport.sockets import peer_certificate_name, tune_socket

log = logging.getLogger(__name__)

_AWAIT_HELLO = 0
_AWAIT_PROOF = 1
_AUTHENTICATED = 2
_CLOSED = 3


class AcceptorContext(Protocol):
    """What an inbound connection needs from the transport that accepted it."""

    node_id: str
    secret: bytes
    max_frame_bytes: int
    handshake_timeout: float
    stats: stats.TransportStats
    deliver: Callable[[Message], None]
    # Forwarded proposals and their answers (None: dropped as malformed, as by older nodes).
    deliver_forward: Callable[[Forwarding], None] | None

    @property
    def accepting(self) -> bool: ...

    def is_peer(self, node_id: str) -> bool: ...

    def inbound_authenticated(self, peer_id: str, conn: InboundConnection) -> None: ...

    def inbound_closed(self, conn: InboundConnection) -> None: ...

    def handshake_info(self) -> wire.HandshakeInfo | None:
        """What this node says about itself (None: nothing, as older nodes did)."""
        ...

    def peer_info(self, peer_id: str, info: wire.HandshakeInfo | None) -> bool:
        """An authenticated peer said ``info``; False refuses it (another cluster)."""
        ...


class InboundConnection(asyncio.Protocol):
    def __init__(self, ctx: AcceptorContext) -> None:
        self._ctx = ctx
        self._state = _AWAIT_HELLO
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._seen_bytes = False
        self._dialer_id = ""
        self._dialer_nonce = b""
        self._acceptor_nonce = b""
        self._opener: wire.FrameOpener | None = None
        self.peer_id: str | None = None  # set once authenticated

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API.
        self._transport = cast(asyncio.Transport, transport)
        if not self._ctx.accepting:  # accepted just as the transport began to stop
            self.close()
            return
        tune_socket(transport)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._ctx.handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._state == _CLOSED:
            return
        self._seen_bytes = True
        buffer = self._buffer
        buffer += data
        try:
            consumed = self._consume(buffer)
        except wire.ProtocolViolation as exc:
            self.fail(exc.reason, exc.detail)
            return
        if consumed:
            del buffer[:consumed]

    def eof_received(self) -> bool:
        return False  # close; the dialer never half-closes on purpose

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state != _CLOSED:
            if self._buffer:
                self._ctx.stats.drop(stats.TRUNCATED)
            elif self._state != _AUTHENTICATED and self._seen_bytes:
                self._ctx.stats.drop(stats.AUTH_FAILED)
        self._state = _CLOSED
        self._cancel_timer()
        self._buffer = bytearray()
        self._ctx.inbound_closed(self)

    # ------------------------------------------------------------ control

    def close(self) -> None:
        """Close without counting anything (shutdown, or a newer connection replaced this)."""
        self._state = _CLOSED
        self._cancel_timer()
        if self._transport is not None:
            self._transport.abort()

    def fail(self, reason: str, detail: str) -> None:
        if self._state == _CLOSED:
            return
        self._ctx.stats.drop(reason)
        log.debug("closing inbound connection from %s: %s (%s)", self._who(), reason, detail)
        self.close()

    # ------------------------------------------------------------ parsing

    def _consume(self, buffer: bytearray) -> int:
        """Handle every complete frame in ``buffer``; return how many bytes were used."""
        pos = 0
        end = len(buffer)
        with memoryview(buffer) as view:
            while end - pos >= wire.LENGTH_BYTES and self._state != _CLOSED:
                length = wire.frame_length(buffer, pos)
                limit = (
                    self._ctx.max_frame_bytes
                    if self._state == _AUTHENTICATED
                    else wire.HANDSHAKE_MAX_FRAME
                )
                if length > limit:
                    raise wire.ProtocolViolation(
                        stats.OVERSIZED, f"frame of {length} bytes, limit {limit}"
                    )
                start = pos + wire.LENGTH_BYTES
                if end - start < length:
                    break
                pos = start + length
                body = view[start:pos]
                if self._state == _AUTHENTICATED:
                    self._on_data_frame(body)
                else:
                    self._on_handshake_frame(bytes(body))
        return pos

    def _on_handshake_frame(self, body: bytes) -> None:
        assert self._transport is not None
        if self._state == _AWAIT_HELLO:
            dialer_id, nonce = wire.decode_hello(body)
            if not self._ctx.is_peer(dialer_id):
                raise wire.ProtocolViolation(stats.AUTH_FAILED, f"unknown node {dialer_id!r}")
            named = peer_certificate_name(self._transport)
            if named is not None and named != dialer_id:
                raise wire.ProtocolViolation(
                    stats.AUTH_FAILED, f"{dialer_id!r} has a certificate for {named!r}"
                )
            self._dialer_id = dialer_id
            self._dialer_nonce = nonce
            self._acceptor_nonce = os.urandom(wire.NONCE_BYTES)
            self._transport.write(wire.encode_challenge(self._ctx.node_id, self._acceptor_nonce))
            self._state = _AWAIT_PROOF
            return
        proof, theirs = wire.decode_proof_info(body)
        ctx = self._ctx
        transcript = wire.transcript(
            self._dialer_id, ctx.node_id, self._dialer_nonce, self._acceptor_nonce
        )
        if not wire.proofs_match(
            proof, wire.dialer_proof(ctx.secret, transcript + (theirs or b""))
        ):
            raise wire.ProtocolViolation(stats.AUTH_FAILED, "dialer proof does not verify")
        # Answer in the dialer's format: with our info only if it sent its own.
        info = None if theirs is None else ctx.handshake_info()
        mine = None if info is None else wire.encode_info(info)
        answer = wire.acceptor_proof(ctx.secret, transcript + (mine or b""))
        self._transport.write(wire.encode_proof(answer, mine))
        peer_info = None if theirs is None else wire.decode_info(theirs)
        if not ctx.peer_info(self._dialer_id, peer_info):
            raise wire.ProtocolViolation(
                stats.CLUSTER_ID_MISMATCH, f"{self._dialer_id!r} belongs to another cluster"
            )
        self._opener = wire.FrameOpener(wire.session_key(self._ctx.secret, transcript))
        self._state = _AUTHENTICATED
        self.peer_id = self._dialer_id
        self._cancel_timer()
        self._ctx.inbound_authenticated(self._dialer_id, self)

    def _on_data_frame(self, body: memoryview) -> None:
        assert self._opener is not None
        payload = self._opener.open(body)  # raises on a bad MAC or sequence
        ctx = self._ctx
        try:
            msgs = proposals.decode_all(bytes(payload))
        except ValueError:
            ctx.stats.drop(stats.MALFORMED)
            return
        for msg in msgs:  # a grouped frame's all share one sender and recipient
            self._on_message(msg)

    def _on_message(self, msg: proposals.PeerMessage) -> None:
        ctx = self._ctx
        if msg.frm != self.peer_id:
            ctx.stats.drop(stats.WRONG_SENDER)
            return
        if msg.to != ctx.node_id:
            ctx.stats.drop(stats.WRONG_RECIPIENT)
            return
        forward = None if type(msg) is Message else ctx.deliver_forward
        if forward is None and type(msg) is not Message:
            ctx.stats.drop(stats.MALFORMED)  # nobody here takes forwarded proposals
            return
        ctx.stats.received += 1
        try:
            if forward is None:
                ctx.deliver(msg)  # type: ignore[arg-type]
            else:
                forward(msg)  # type: ignore[arg-type]
        except Exception:
            # The receiver's bug must not cost us the connection or the frames behind it.
            log.exception("on_message raised for a message from %s", self.peer_id)

    # ------------------------------------------------------------ helpers

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._state in (_AWAIT_HELLO, _AWAIT_PROOF):
            self.fail(stats.HANDSHAKE_TIMEOUT, "handshake not completed in time")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _who(self) -> str:
        if self._transport is None:
            return "?"
        return str(self._transport.get_extra_info("peername"))
