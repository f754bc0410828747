"""A hand-driven peer for attacking a node's Raft port from outside its process.

``RawPeer`` speaks the peer protocol of ``raft3d.transport.wire`` one step at a time over a
plain blocking socket, so a test can stop, corrupt, forge or replay at any point. Blocking I/O
keeps it independent of any event loop: the node it attacks runs in another process.

Whatever must be judged by the node in one go (a proof and the frames behind it) should be
sent in one ``send`` call: on loopback it then arrives as one read, so it is handled before
the genuine peer whose connection an impersonation displaces can dial back in.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from dataclasses import dataclass
from types import TracebackType

from raft3d.transport import stats, wire

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class AnsweredChallenge:
    """A handshake ready to finish: the dialer's proof frame (not sent yet) and what follows."""

    proof_frame: bytes
    sealer: wire.FrameSealer  # seals data frames for the session the proof opens
    acceptor_proof: bytes  # what an honest acceptor answers to the proof

    def seal(self, payload: bytes) -> bytes:
        return self.sealer.seal(payload)


class RawPeer:
    """One TCP connection to a node's Raft port; records every byte it sends."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.timeout = timeout
        self.sent = bytearray()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        """Write ``data`` in one call; the node may already have hung up, which is fine."""
        self.sent += data
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def read_frame(self) -> bytes | None:
        """The body of the next frame, or None once the node has closed the connection."""
        header = self._read_exactly(wire.LENGTH_BYTES)
        if header is None:
            return None
        return self._read_exactly(wire.frame_length(header))

    def answer_challenge(self, node_id: str, secret: bytes) -> AnsweredChallenge | None:
        """Say hello as ``node_id`` and answer the node's challenge under ``secret``.

        Returns None when the node hangs up instead of challenging (it refused the hello).
        The proof is returned, not sent, so the caller decides what travels with it.
        """
        nonce = os.urandom(wire.NONCE_BYTES)
        self.send(wire.encode_hello(node_id, nonce))
        challenge = self.read_frame()
        if challenge is None:
            return None
        acceptor_id, acceptor_nonce = wire.decode_challenge(challenge)
        transcript = wire.transcript(node_id, acceptor_id, nonce, acceptor_nonce)
        return AnsweredChallenge(
            proof_frame=wire.encode_proof(wire.dialer_proof(secret, transcript)),
            sealer=wire.FrameSealer(wire.session_key(secret, transcript)),
            acceptor_proof=wire.acceptor_proof(secret, transcript),
        )

    def closed_by_peer(self, timeout: float | None = None) -> bool:
        """Read and discard until the node closes; False if it stays open for ``timeout``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True  # reset: it closed with bytes of ours still unread
        return False

    def close(self) -> None:
        self.sock.close()

    def _read_exactly(self, count: int) -> bytes | None:
        data = bytearray()
        self.sock.settimeout(self.timeout)
        try:
            while len(data) < count:
                chunk = self.sock.recv(count - len(data))
                if not chunk:
                    return None
                data += chunk
        except (ConnectionError, TimeoutError):
            return None
        return bytes(data)


# ---------------------------------------------------------------- unauthenticated garbage


def garbage_samples(rng: random.Random) -> list[bytes]:
    """Junk for a fresh connection, shaped to reach each way the handshake can refuse it."""
    limit = wire.HANDSHAKE_MAX_FRAME
    samples = [rng.randbytes(rng.randint(1, 3000)) for _ in range(4)]  # mostly huge prefixes
    samples.append(rng.randbytes(rng.randint(1, wire.LENGTH_BYTES - 1)))  # not even a prefix
    for _ in range(4):  # a plausible length, then a body of random bytes
        length = rng.randint(0, limit)
        samples.append(wire.frame(rng.randbytes(length)) + rng.randbytes(rng.randint(0, 64)))
    for _ in range(2):  # a plausible length, then less body than it promised
        length = rng.randint(2, limit)
        samples.append(wire.frame(rng.randbytes(length))[: -rng.randint(1, length)])
    return samples


def garbage_drop_reason(garbage: bytes) -> str:
    """The one drop a node counts for ``garbage`` sent on a fresh connection that then closes.

    Follows the acceptor's rules: a length over the handshake limit is refused as soon as it
    is read; a complete frame of random bytes never decodes as a hello; anything cut short is
    truncated when the connection closes.
    """
    if not garbage:
        raise ValueError("a connection that sends nothing is not counted")
    if len(garbage) < wire.LENGTH_BYTES:
        return stats.TRUNCATED
    length = wire.frame_length(garbage)
    if length > wire.HANDSHAKE_MAX_FRAME:
        return stats.OVERSIZED
    if len(garbage) - wire.LENGTH_BYTES < length:
        return stats.TRUNCATED
    return stats.AUTH_FAILED
