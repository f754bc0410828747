"""The peer protocol's byte formats and cryptography, with no I/O.

Every frame on a connection is ``length (4 bytes, big-endian) || body``.

Handshake (bodies are msgpack arrays, at most ``HANDSHAKE_MAX_FRAME`` bytes, no MAC)::

    dialer   -> acceptor   HELLO      [PROTOCOL, dialer_id, dialer_nonce]
    acceptor -> dialer     CHALLENGE  [acceptor_id, acceptor_nonce]
    dialer   -> acceptor   PROOF      [HMAC(secret, "dialer-proof"   || transcript || info), info]
    acceptor -> dialer     PROOF      [HMAC(secret, "acceptor-proof" || transcript || info), info]

``transcript`` binds the protocol version, both node ids and both nonces. Each side checks
the other's proof over nonces it chose itself, so a recorded handshake is useless on a new
connection, and the direction labels keep one side's proof from passing as the other's.
The acceptor proves itself only after the dialer has, so it is never an oracle for strangers.
``info`` (``HandshakeInfo``: the sender's cluster id, whether its log holds anything, and
where it listens) is covered by the proof; a dialer that sends a proof without it (an older
peer) gets an answer without it, proven over the transcript alone.

After the handshake only the dialer sends, and every body is
``mac (16 bytes) || seq (8 bytes, big-endian) || payload`` where ``payload`` is
``Message.to_wire()`` (or a forwarded proposal or its answer: ``proposals``) and ``mac``
is HMAC-SHA256 under the connection's session key over ``seq || payload``, truncated.
``seq`` starts at 1 and grows by exactly one per frame, so a copied, dropped or reordered
frame is caught even though its MAC is genuine.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from raft3d.transport import stats

PROTOCOL = b"raft3d-peer/1"
NONCE_BYTES = 32
PROOF_BYTES = 32
MAC_BYTES = 16
SEQ_BYTES = 8
DATA_HEADER_BYTES = MAC_BYTES + SEQ_BYTES
LENGTH_BYTES = 4
MAX_NODE_ID_CHARS = 256
# Large enough for the biggest legitimate handshake message (two long ids and a nonce).
HANDSHAKE_MAX_FRAME = 2048

_LENGTH = struct.Struct(">I")
_SEQ = struct.Struct(">Q")

_DIALER_PROOF = b"raft3d dialer-proof\x00"
_ACCEPTOR_PROOF = b"raft3d acceptor-proof\x00"
_SESSION_KEY = b"raft3d session-key dialer-to-acceptor\x00"


class ProtocolViolation(Exception):
    """The other end broke the protocol; ``reason`` is the drop counter to bump."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- framing


def frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


def frame_length(header: bytes | bytearray, offset: int = 0) -> int:
    length: int = _LENGTH.unpack_from(header, offset)[0]
    return length


# ---------------------------------------------------------------- handshake messages


def encode_hello(dialer_id: str, nonce: bytes) -> bytes:
    return frame(_pack([PROTOCOL, dialer_id, nonce]))


def decode_hello(body: bytes) -> tuple[str, bytes]:
    fields = _unpack_handshake(body, 3, "hello")
    if fields[0] != PROTOCOL:
        raise ProtocolViolation(stats.AUTH_FAILED, "unsupported protocol in hello")
    return _node_id(fields[1]), _nonce(fields[2])


def encode_challenge(acceptor_id: str, nonce: bytes) -> bytes:
    return frame(_pack([acceptor_id, nonce]))


def decode_challenge(body: bytes) -> tuple[str, bytes]:
    fields = _unpack_handshake(body, 2, "challenge")
    return _node_id(fields[0]), _nonce(fields[1])


@dataclass(frozen=True, slots=True)
class HandshakeInfo:
    """What each side of a handshake says about itself."""

    cluster_id: str  # "" while not known (a node about to join)
    formed: bool  # its log holds something: the cluster it belongs to exists
    raft_addr: str  # where it listens ("host:port"), so that a stranger can be answered


def encode_info(info: HandshakeInfo) -> bytes:
    return _pack([info.cluster_id, info.formed, info.raft_addr])


def decode_info(raw: bytes) -> HandshakeInfo:
    try:
        fields = msgpack.unpackb(raw, raw=False, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolViolation(stats.AUTH_FAILED, "undecodable handshake info") from exc
    if type(fields) is not list or len(fields) != 3:
        raise ProtocolViolation(stats.AUTH_FAILED, "malformed handshake info")
    cluster_id, formed, raft_addr = fields
    if type(cluster_id) is not str or type(formed) is not bool or type(raft_addr) is not str:
        raise ProtocolViolation(stats.AUTH_FAILED, "malformed handshake info")
    if len(cluster_id) > MAX_NODE_ID_CHARS or len(raft_addr) > MAX_NODE_ID_CHARS:
        raise ProtocolViolation(stats.AUTH_FAILED, "handshake info too long")
    return HandshakeInfo(cluster_id, formed, raft_addr)


def clusters_differ(a: HandshakeInfo | None, b: HandshakeInfo | None) -> bool:
    """Both sides name a cluster, and not the same one."""
    return (
        a is not None
        and b is not None
        and bool(a.cluster_id and b.cluster_id)
        and (a.cluster_id != b.cluster_id)
    )


def encode_proof(proof: bytes, info: bytes | None = None) -> bytes:
    return frame(_pack([proof] if info is None else [proof, info]))


def decode_proof(body: bytes) -> bytes:
    return decode_proof_info(body)[0]


def decode_proof_info(body: bytes) -> tuple[bytes, bytes | None]:
    """A proof and the encoded info that came with it (None from an older peer)."""
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolViolation(stats.AUTH_FAILED, "undecodable proof") from exc
    if type(fields) is not list or len(fields) not in (1, 2):
        raise ProtocolViolation(stats.AUTH_FAILED, "malformed proof")
    proof = fields[0]
    info = fields[1] if len(fields) == 2 else None
    if type(proof) is not bytes or len(proof) != PROOF_BYTES:
        raise ProtocolViolation(stats.AUTH_FAILED, "malformed proof")
    if info is not None and type(info) is not bytes:
        raise ProtocolViolation(stats.AUTH_FAILED, "malformed proof")
    return proof, info


def transcript(
    dialer_id: str, acceptor_id: str, dialer_nonce: bytes, acceptor_nonce: bytes
) -> bytes:
    # msgpack length-prefixes every field, so distinct inputs never collide.
    return _pack([PROTOCOL, dialer_id, acceptor_id, dialer_nonce, acceptor_nonce])


def dialer_proof(secret: bytes, transcript_bytes: bytes) -> bytes:
    return _hmac(secret, _DIALER_PROOF + transcript_bytes)


def acceptor_proof(secret: bytes, transcript_bytes: bytes) -> bytes:
    return _hmac(secret, _ACCEPTOR_PROOF + transcript_bytes)


def session_key(secret: bytes, transcript_bytes: bytes) -> bytes:
    return _hmac(secret, _SESSION_KEY + transcript_bytes)


def proofs_match(received: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(received, expected)


# ---------------------------------------------------------------- data frames


class FrameMac:
    """HMAC-SHA256 (RFC 2104) under one key, truncated to ``MAC_BYTES``.

    The keyed inner and outer hash states are computed once and copied per frame: the same
    result as ``hmac.new(key, data, sha256)``, at a fraction of the per-call cost.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, data: bytes | memoryview) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:MAC_BYTES]


class FrameSealer:
    """Turns payloads into authenticated frames for one connection (dialer side)."""

    __slots__ = ("_mac", "seq")

    def __init__(self, key: bytes) -> None:
        self._mac = FrameMac(key)
        self.seq = 0

    def seal(self, payload: bytes) -> bytes:
        self.seq += 1
        signed = _SEQ.pack(self.seq) + payload
        return _LENGTH.pack(MAC_BYTES + len(signed)) + self._mac(signed) + signed


class FrameOpener:
    """Checks frames of one connection (acceptor side): MAC first, then the sequence."""

    __slots__ = ("_mac", "expected_seq")

    def __init__(self, key: bytes) -> None:
        self._mac = FrameMac(key)
        self.expected_seq = 1

    def open(self, body: memoryview) -> memoryview:
        """Return the payload of ``body`` (a frame without its length prefix).

        Raises ``ProtocolViolation`` ("bad_mac" or "replay"); either ends the connection.
        """
        if len(body) < DATA_HEADER_BYTES:
            raise ProtocolViolation(stats.BAD_MAC, "frame too short to carry a MAC")
        if not hmac.compare_digest(self._mac(body[MAC_BYTES:]), body[:MAC_BYTES]):
            raise ProtocolViolation(stats.BAD_MAC, "frame MAC does not verify")
        (seq,) = _SEQ.unpack_from(body, MAC_BYTES)
        if seq != self.expected_seq:
            raise ProtocolViolation(
                stats.REPLAY, f"frame sequence {seq}, expected {self.expected_seq}"
            )
        self.expected_seq += 1
        return body[DATA_HEADER_BYTES:]


# ---------------------------------------------------------------- helpers


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, hashlib.sha256)


_packb: Callable[..., bytes] = msgpack.packb


def _pack(fields: list[Any]) -> bytes:
    return _packb(fields, use_bin_type=True)


def _unpack_handshake(body: bytes, arity: int, what: str) -> list[Any]:
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolViolation(stats.AUTH_FAILED, f"undecodable {what}") from exc
    if type(fields) is not list or len(fields) != arity:
        raise ProtocolViolation(stats.AUTH_FAILED, f"malformed {what}")
    return fields


def _node_id(value: object) -> str:
    if type(value) is not str or not value or len(value) > MAX_NODE_ID_CHARS:
        raise ProtocolViolation(stats.AUTH_FAILED, "malformed node id in handshake")
    return value


def _nonce(value: object) -> bytes:
    if type(value) is not bytes or len(value) != NONCE_BYTES:
        raise ProtocolViolation(stats.AUTH_FAILED, "malformed nonce in handshake")
    return value
