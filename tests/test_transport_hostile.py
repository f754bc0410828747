"""raft3d.transport against hostile input on a real socket: every kind of bad frame and
handshake is counted by its drop reason and never delivered."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable, Coroutine
from typing import Any

import msgpack

from raft3d.consensus.types import Message
from raft3d.transport import wire
from tests.support.transports import (
    LOCAL,
    SECRET,
    Cluster,
    counter_changes,
    message,
    only_task_left,
    run_on_uvloop,
)
from tests.support.waiting import eventually

# ---------------------------------------------------------------- hostile input


class RawDialer:
    """A hand-driven dialer speaking the peer protocol byte by byte, to attack a transport."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sent = bytearray()  # everything written, to replay later
        self.sealer: wire.FrameSealer | None = None

    @classmethod
    async def open(cls, port: int) -> RawDialer:
        reader, writer = await asyncio.open_connection(LOCAL, port)
        return cls(reader, writer)

    def write(self, data: bytes) -> None:
        self.sent += data
        self.writer.write(data)

    async def flush(self) -> None:
        with contextlib.suppress(ConnectionError):  # it may already have hung up on us
            await self.writer.drain()

    async def read_frame(self) -> bytes | None:
        """The next handshake frame, or None once the other end has closed."""
        try:
            header = await self.reader.readexactly(4)
            return await self.reader.readexactly(int.from_bytes(header, "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def handshake(self, node_id: str, secret: bytes = SECRET) -> bool:
        nonce = os.urandom(wire.NONCE_BYTES)
        self.write(wire.encode_hello(node_id, nonce))
        challenge = await self.read_frame()
        if challenge is None:
            return False
        acceptor_id, acceptor_nonce = wire.decode_challenge(challenge)
        transcript = wire.transcript(node_id, acceptor_id, nonce, acceptor_nonce)
        self.write(wire.encode_proof(wire.dialer_proof(secret, transcript)))
        answer = await self.read_frame()
        if answer is None:
            return False
        assert wire.proofs_match(wire.decode_proof(answer), wire.acceptor_proof(secret, transcript))
        self.sealer = wire.FrameSealer(wire.session_key(secret, transcript))
        return True

    def seal(self, payload: bytes) -> bytes:
        assert self.sealer is not None
        return self.sealer.seal(payload)

    def send(self, msg: Message) -> bytes:
        frame = self.seal(msg.to_wire())
        self.write(frame)
        return frame

    async def closed_by_peer(self) -> bool:
        """Read until the transport closes the connection; False if it stays open for 5 s."""
        try:
            async with asyncio.timeout(5):
                while await self.reader.read(65536):
                    pass
        except ConnectionError:
            return True  # reset: it closed with our unread bytes still queued
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def hostile_inputs() -> None:
    max_frame = 64 * 1024
    async with Cluster() as cluster:
        target = await cluster.add(
            "n1", ["n2", "n3"], max_frame_bytes=max_frame, handshake_timeout=0.3
        )
        n2 = await cluster.add("n2", ["n1"])
        cluster.wire_up()  # n3 is played by the raw dialers below (it knows the secret)
        await eventually(lambda: n2.transport.reachable("n1"))
        legit: list[Message] = []
        counters = target.transport.dropped
        port = target.port

        async def counted(
            action: Callable[[], Coroutine[Any, Any, None]], total: int
        ) -> dict[str, int]:
            """Run ``action``; return the counter changes once ``total`` drops were counted."""
            before = dict(counters)
            await action()
            await eventually(lambda: sum(counter_changes(before, counters).values()) >= total)
            return counter_changes(before, counters)

        async def expect(
            changes: dict[str, int], action: Callable[[], Coroutine[Any, Any, None]]
        ) -> None:
            assert await counted(action, sum(changes.values())) == changes

        rng = random.Random(20240607)

        async def garbage(authenticate: bool) -> None:
            d = await RawDialer.open(port)
            if authenticate:
                assert await d.handshake("n3")
            d.write(rng.randbytes(rng.randint(1, 3000)))
            await d.flush()
            await d.close()

        # 1. Random garbage before any handshake, then close: one count per connection.
        for _ in range(20):
            changes = await counted(lambda: garbage(authenticate=False), 1)
            assert sum(changes.values()) == 1
            assert set(changes) <= {"oversized", "auth_failed", "truncated"}

        # 2. A truncated frame, then close.
        async def truncated_handshake() -> None:
            d = await RawDialer.open(port)
            d.write((100).to_bytes(4, "big") + b"0123456789")
            await d.flush()
            await d.close()

        await expect({"truncated": 1}, truncated_handshake)

        # 3. An oversized length prefix: refused at once, the body is never awaited.
        async def oversized_before_handshake() -> None:
            d = await RawDialer.open(port)
            d.write(b"\xff\xff\xff\xff")
            assert await d.closed_by_peer()
            await d.close()

        await expect({"oversized": 1}, oversized_before_handshake)

        # 4. The wrong secret, an unknown node id, the target's own id.
        async def wrong_secret() -> None:
            d = await RawDialer.open(port)
            assert not await d.handshake("n3", b"not-the-secret")
            await d.close()

        await expect({"auth_failed": 1}, wrong_secret)
        for claimed in ("n9", "n1"):

            async def unknown_node(claimed: str = claimed) -> None:
                d = await RawDialer.open(port)
                assert not await d.handshake(claimed)
                await d.close()

            await expect({"auth_failed": 1}, unknown_node)

        # 5. A frame whose MAC was tampered with, or whose payload was.
        for offset in (4, -1):

            async def bad_mac(offset: int = offset) -> None:
                d = await RawDialer.open(port)
                assert await d.handshake("n3")
                frame = bytearray(d.seal(message("n3", "n1", 1).to_wire()))
                frame[offset] ^= 0x01
                d.write(bytes(frame))
                assert await d.closed_by_peer()
                await d.close()

            await expect({"bad_mac": 1}, bad_mac)

        # 6. Replays: the same frame twice on one connection; frames out of order.
        async def replay_on_same_connection() -> None:
            d = await RawDialer.open(port)
            assert await d.handshake("n3")
            m = message("n3", "n1", 10)
            frame = d.send(m)
            legit.append(m)
            await eventually(lambda: target.inbox[-1:] == [m])
            d.write(frame)
            assert await d.closed_by_peer()
            await d.close()

        await expect({"replay": 1}, replay_on_same_connection)

        async def reordered() -> None:
            d = await RawDialer.open(port)
            assert await d.handshake("n3")
            first = d.seal(message("n3", "n1", 11).to_wire())
            second = d.seal(message("n3", "n1", 12).to_wire())
            d.write(second + first)
            assert await d.closed_by_peer()
            await d.close()

        await expect({"replay": 1}, reordered)

        # 7. A whole recorded session (handshake and frames) replayed on a new connection,
        #    and its frames replayed inside a fresh, genuinely authenticated session.
        recorded = await RawDialer.open(port)
        assert await recorded.handshake("n3")
        m = message("n3", "n1", 20)
        recorded_frame = recorded.send(m)
        legit.append(m)
        await eventually(lambda: target.inbox[-1:] == [m])
        await recorded.close()

        async def replayed_session() -> None:
            d = await RawDialer.open(port)
            d.write(bytes(recorded.sent))
            assert await d.closed_by_peer()
            await d.close()

        await expect({"auth_failed": 1}, replayed_session)

        async def old_frame_in_new_session() -> None:
            d = await RawDialer.open(port)
            assert await d.handshake("n3")
            d.write(recorded_frame)
            assert await d.closed_by_peer()
            await d.close()

        await expect({"bad_mac": 1}, old_frame_in_new_session)

        # 8. Authentic frames with bad content are dropped; the connection carries on.
        async def bad_content() -> None:
            d = await RawDialer.open(port)
            assert await d.handshake("n3")
            d.send(message("n2", "n1", 30))  # claims another sender
            d.send(message("n3", "n9", 31))  # addressed elsewhere
            d.write(d.seal(b"\xc1"))  # not msgpack at all
            d.write(d.seal(msgpack.packb([1, 2, 3])))  # msgpack, not a message
            d.write(d.seal(message("n3", "n1", 32).to_wire()[:-1]))  # cut short
            good = message("n3", "n1", 33)
            d.send(good)
            legit.append(good)
            await eventually(lambda: target.inbox[-1:] == [good])
            await d.close()

        await expect({"wrong_sender": 1, "wrong_recipient": 1, "malformed": 3}, bad_content)

        # 9. After authenticating: an oversized frame, garbage, a truncated frame.
        async def oversized_after_handshake() -> None:
            d = await RawDialer.open(port)
            assert await d.handshake("n3")
            d.write((max_frame + 1).to_bytes(4, "big"))
            assert await d.closed_by_peer()
            await d.close()

        await expect({"oversized": 1}, oversized_after_handshake)

        for _ in range(10):
            changes = await counted(lambda: garbage(authenticate=True), 1)
            assert sum(changes.values()) == 1
            assert set(changes) <= {"oversized", "bad_mac", "truncated"}

        async def truncated_after_handshake() -> None:
            d = await RawDialer.open(port)
            assert await d.handshake("n3")
            d.write(d.seal(message("n3", "n1", 40).to_wire())[:-1])
            await d.flush()
            await d.close()

        await expect({"truncated": 1}, truncated_after_handshake)

        # 10. Handshakes that never finish: silent, and stuck after the hello.
        async def silent() -> None:
            d = await RawDialer.open(port)
            assert await d.closed_by_peer()
            await d.close()

        await expect({"handshake_timeout": 1}, silent)

        async def stuck_after_hello() -> None:
            d = await RawDialer.open(port)
            d.write(wire.encode_hello("n3", os.urandom(wire.NONCE_BYTES)))
            assert await d.read_frame() is not None  # the challenge
            assert await d.closed_by_peer()
            await d.close()

        await expect({"handshake_timeout": 1}, stuck_after_hello)

        # After all that, legitimate traffic still flows, and only it was ever delivered.
        assert n2.transport.reachable("n1")
        from_n2 = [message("n2", "n1", 100 + i) for i in range(20)]
        for m in from_n2:
            n2.transport.send(m)
        legit.extend(from_n2)
        await eventually(lambda: len(target.inbox) == len(legit))
        assert target.inbox == legit
        assert target.transport.received == len(legit)
        assert cluster.errors == []
    assert only_task_left()


async def test_hostile_input_is_counted_and_never_delivered() -> None:
    await hostile_inputs()


def test_hostile_input_on_uvloop() -> None:
    run_on_uvloop(hostile_inputs)
