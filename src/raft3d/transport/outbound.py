"""The dialing side: one persistent, authenticated connection to one peer, and its queue.

``PeerLink.run`` loops forever: connect, handshake, then pump the queue into the socket until
the connection is lost, then back off (capped exponential, jittered) and try again. Messages
wait in a bounded queue while the peer is away and go out as soon as a connection is up;
whatever was already written to a connection that then dies is lost (Raft retransmits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from raft3d.transport import stats, wire
from raft3d.transport.proposals import (
    ForwardedProposal,
    PeerMessage,
    ProposalAnswer,
    encode_group,
    take_group,
)
from raft3d.transport.sockets import peer_certificate_name, tune_socket

log = logging.getLogger(__name__)

# One write per batch, but not unboundedly large: big messages (snapshot chunks, long
# appends) are split over several writes so memory stays flat.
MAX_BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LinkSettings:
    node_id: str
    secret: bytes
    max_frame_bytes: int
    queue_limit: int
    handshake_timeout: float
    connect_timeout: float
    write_stall_timeout: float  # a peer that stops reading this long is treated as gone
    backoff_min: float
    backoff_max: float
    ssl: ssl.SSLContext | None = None  # mutual TLS with the cluster CA
    # What this node says about itself in handshakes (None: nothing, as older nodes), and
    # who hears what each peer says (``Transport.peer_info``).
    local_info: Callable[[], wire.HandshakeInfo | None] | None = None
    on_peer_info: Callable[[str, wire.HandshakeInfo | None], bool] | None = None


class _DialerProtocol(asyncio.StreamReaderProtocol):
    """A stream protocol that also reports the loss of the connection at once.

    The acceptor never writes after the handshake, so without this an idle link would only
    notice a dead peer on its next write.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        on_lost: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(reader, loop=loop)
        self._on_lost = on_lost

    def eof_received(self) -> bool:
        super().eof_received()
        self._on_lost()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._on_lost()


class _Connection:
    __slots__ = ("lost", "reader", "sealer", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.lost = False
        self.sealer: wire.FrameSealer | None = None  # set by a successful handshake

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):  # already broken: closed is all we need
            await self.writer.wait_closed()


class PeerLink:
    def __init__(
        self,
        peer_id: str,
        address: tuple[str, int],
        settings: LinkSettings,
        counters: stats.TransportStats,
        on_change: Callable[[str, bool], None],
    ) -> None:
        self.peer_id = peer_id
        self.address = address
        self._settings = settings
        self._stats = counters
        self._on_change = on_change
        self._queue: deque[PeerMessage] = deque()
        self._wakeup = asyncio.Event()
        self._redial = asyncio.Event()
        self._random = random.Random()
        self.connected = False
        self._failed_handshakes = 0
        # While the pump waits with nothing queued, what is sent is written straight from
        # the loop (see _flush_soon) instead of waking the pump's task for it.
        self._idle_conn: _Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_due = False

    # ------------------------------------------------------------ producer side

    def enqueue(self, msg: PeerMessage) -> bool:
        """Queue ``msg``; False when the queue is full (the caller counts the drop)."""
        if len(self._queue) >= self._settings.queue_limit:
            return False
        self._queue.append(msg)
        if self._idle_conn is not None:
            self._flush_soon()
        else:
            self._wakeup.set()
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------ connection loop

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        backoff = self._settings.backoff_min
        while True:
            conn = await self._connect()
            if conn is not None:
                backoff = self._settings.backoff_min
                try:
                    self._set_connected(True)
                    await self._pump(conn)
                except (OSError, TimeoutError) as exc:
                    log.debug("connection to %s failed: %r", self.peer_id, exc)
                finally:
                    self._set_connected(False)
                    await conn.close()
            delay = backoff * (0.5 + 0.5 * self._random.random())
            backoff = min(backoff * 2, self._settings.backoff_max)
            await self._pause(delay)

    def redial(self, address: tuple[str, int]) -> None:
        """Use ``address`` from the next attempt on; if disconnected, attempt it now."""
        self.address = address
        self._redial.set()

    async def _pause(self, delay: float) -> None:
        self._redial.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._redial.wait()

    async def _connect(self) -> _Connection | None:
        """Dial and authenticate; None (after counting any protocol failure) if that fails."""
        s = self._settings
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=wire.HANDSHAKE_MAX_FRAME * 4, loop=loop)
        conn: _Connection | None = None

        def lost() -> None:
            if conn is not None:
                conn.lost = True
                self._wakeup.set()

        protocol = _DialerProtocol(reader, lost, loop)
        host, port = self.address
        try:
            async with asyncio.timeout(s.connect_timeout):
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    host,
                    port,
                    ssl=s.ssl,
                    server_hostname=host if s.ssl else None,
                    ssl_handshake_timeout=s.handshake_timeout if s.ssl else None,
                )
        except ssl.SSLError as exc:
            self._stats.drop(stats.AUTH_FAILED)
            self._handshake_failed(f"TLS: {exc.reason or exc}")
            return None
        except (OSError, TimeoutError) as exc:
            log.debug("cannot connect to %s at %s:%s: %r", self.peer_id, host, port, exc)
            return None
        conn = _Connection(reader, asyncio.StreamWriter(transport, protocol, reader, loop))
        tune_socket(transport)
        try:
            async with asyncio.timeout(s.handshake_timeout):
                await self._handshake(conn)
        except TimeoutError:
            self._stats.drop(stats.HANDSHAKE_TIMEOUT)
            self._handshake_failed("timed out")
        except wire.ProtocolViolation as exc:
            self._stats.drop(exc.reason)
            self._handshake_failed(str(exc))
        except OSError as exc:
            log.debug("connection to %s lost during the handshake: %r", self.peer_id, exc)
        except BaseException:  # cancelled (stop): still close cleanly
            await conn.close()
            raise
        else:
            if not conn.lost:
                self._failed_handshakes = 0
                return conn
        await conn.close()
        return None

    def _handshake_failed(self, why: str) -> None:
        # Retries come every second or so: say it loudly once, then quietly.
        level = logging.WARNING if self._failed_handshakes == 0 else logging.DEBUG
        self._failed_handshakes += 1
        log.log(level, "handshake with %s at %s failed: %s", self.peer_id, self.address, why)

    async def _handshake(self, conn: _Connection) -> None:
        s = self._settings
        nonce = os.urandom(wire.NONCE_BYTES)
        conn.writer.write(wire.encode_hello(s.node_id, nonce))
        challenge = await _read_handshake_frame(conn, "it closed before its challenge")
        acceptor_id, acceptor_nonce = wire.decode_challenge(challenge)
        if acceptor_id != self.peer_id:
            raise wire.ProtocolViolation(
                stats.AUTH_FAILED, f"{self.address} is {acceptor_id!r}, not {self.peer_id!r}"
            )
        named = peer_certificate_name(conn.writer.transport)
        if named is not None and named != self.peer_id:
            raise wire.ProtocolViolation(
                stats.AUTH_FAILED, f"{self.address} has a certificate for {named!r}"
            )
        transcript = wire.transcript(s.node_id, acceptor_id, nonce, acceptor_nonce)
        info = s.local_info() if s.local_info is not None else None
        mine = None if info is None else wire.encode_info(info)
        signed = transcript + (mine or b"")
        conn.writer.write(wire.encode_proof(wire.dialer_proof(s.secret, signed), mine))
        answer = await _read_handshake_frame(
            conn, "it rejected our proof (is the cluster secret the same on both nodes?)"
        )
        proof, theirs = wire.decode_proof_info(answer)
        if not wire.proofs_match(
            proof, wire.acceptor_proof(s.secret, transcript + (theirs or b""))
        ):
            raise wire.ProtocolViolation(stats.AUTH_FAILED, "acceptor proof does not verify")
        peer_info = None if theirs is None else wire.decode_info(theirs)
        if s.on_peer_info is not None and not s.on_peer_info(self.peer_id, peer_info):
            raise wire.ProtocolViolation(
                stats.CLUSTER_ID_MISMATCH, f"{self.peer_id!r} belongs to another cluster"
            )
        conn.sealer = wire.FrameSealer(wire.session_key(s.secret, transcript))

    async def _pump(self, conn: _Connection) -> None:
        """Write queued messages until the connection is lost (returns or raises OSError)."""
        queue = self._queue
        wakeup = self._wakeup
        writer = conn.writer
        sealer = conn.sealer
        assert sealer is not None
        while not conn.lost:
            if not queue:
                wakeup.clear()
                self._idle_conn = conn
                try:
                    await wakeup.wait()
                finally:
                    self._idle_conn = None
                if not queue and not conn.lost:
                    # A flush left bytes in the transport: wait for the peer to read them,
                    # as after a write of our own.
                    async with asyncio.timeout(self._settings.write_stall_timeout):
                        await writer.drain()
                continue
            batch = self._seal_batch(sealer)
            if not batch:
                continue
            writer.write(batch)
            self._stats.writes += 1
            async with asyncio.timeout(self._settings.write_stall_timeout):
                await writer.drain()

    def _flush_soon(self) -> None:
        """Write what is queued at the end of this turn of the loop: everything sent in one
        turn (a Ready's messages) goes out in one write, without a task switch."""
        if not self._flush_due and self._loop is not None:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def flush_now(self) -> None:
        """Write what ``enqueue`` left for the end of this turn of the loop, now."""
        if self._flush_due:
            self._flush()

    def _flush(self) -> None:
        if not self._flush_due:
            return  # flushed early (flush_now)
        self._flush_due = False
        conn = self._idle_conn
        if conn is None or conn.lost or conn.sealer is None:
            self._wakeup.set()  # the pump takes over (or notices the loss)
            return
        batch = self._seal_batch(conn.sealer)
        if batch:
            conn.writer.write(batch)
            self._stats.writes += 1
        if self._queue or conn.writer.transport.get_write_buffer_size():
            self._wakeup.set()  # more than one batch, or the peer is slow: the pump drains

    def _seal_batch(self, sealer: wire.FrameSealer) -> bytes:
        queue = self._queue
        max_payload = self._settings.max_frame_bytes - wire.DATA_HEADER_BYTES
        counters = self._stats
        frames: list[bytes] = []
        size = sent = 0
        while queue and size < MAX_BATCH_BYTES:
            msg = queue.popleft()
            kind = type(msg)
            count = 1
            try:
                if kind is ForwardedProposal or kind is ProposalAnswer:
                    group, expired = take_group(msg, queue, max_payload)  # type: ignore[arg-type]
                    if expired:
                        counters.drop(stats.EXPIRED, expired)  # proposers gave up: never sent
                    if not group:
                        continue
                    count = len(group)
                    payload = encode_group(group)
                else:
                    payload = msg.to_wire()
            except Exception:
                log.exception("cannot encode a message for %s", self.peer_id)
                counters.drop(stats.UNENCODABLE, count)
                continue
            if len(payload) > max_payload:
                counters.drop(stats.TOO_LARGE, count)
                continue
            sealed = sealer.seal(payload)
            frames.append(sealed)
            size += len(sealed)
            sent += count
        counters.sent += sent
        return b"".join(frames)

    def _set_connected(self, up: bool) -> None:
        if self.connected == up:
            return
        self.connected = up
        log.info("link to %s is %s", self.peer_id, "up" if up else "down")
        self._on_change(self.peer_id, up)


async def _read_handshake_frame(conn: _Connection, if_closed: str) -> bytes:
    try:
        header = await conn.reader.readexactly(wire.LENGTH_BYTES)
        length = wire.frame_length(header)
        if length > wire.HANDSHAKE_MAX_FRAME:
            raise wire.ProtocolViolation(stats.OVERSIZED, f"handshake frame of {length} bytes")
        return await conn.reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise wire.ProtocolViolation(stats.AUTH_FAILED, if_closed) from exc
