"""raft3d.transport over real loopback sockets: delivery, reconnects, bounds, hostile input."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import os
import random
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any

import msgpack
import pytest
import uvloop

from raft3d.consensus.types import Entry, Message, MsgType
from raft3d.transport import DROP_REASONS, Transport, wire
from raft3d.transport.inbound import InboundConnection
from raft3d.transport.proposals import Forwarding
from raft3d.transport.stats import TransportStats
from tests.support.waiting import eventually

LOCAL = "127.0.0.1"
SECRET = b"transport-test-cluster-secret"
NOWHERE = (LOCAL, 0)  # placeholder until the real port is known; dialing it is refused


# ---------------------------------------------------------------- harness


def message(frm: str, to: str, n: int) -> Message:
    """A distinct, non-trivial message: n is carried in several fields."""
    return Message(
        MsgType.APP,
        to=to,
        frm=frm,
        term=3,
        log_term=2,
        index=n,
        entries=[Entry(n + 1, 3, f"entry-{n}".encode())],
        commit=n // 2,
    )


class Node:
    def __init__(self, transport: Transport, inbox: list[Message]) -> None:
        self.transport = transport
        self.inbox = inbox
        self.peer_events: list[tuple[str, bool]] = []

    @property
    def id(self) -> str:
        return self.transport.node_id

    @property
    def port(self) -> int:
        return self.transport.port


class Cluster:
    """Transports on port 0 that learn each other's ports after starting; stops them all."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.errors: list[dict[str, Any]] = []

    async def __aenter__(self) -> Cluster:
        # Anything the loop reports (a crashed callback, an unretrieved exception) fails the test.
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: self.errors.append(ctx))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in self.nodes.values():
            await node.transport.stop()
        asyncio.get_running_loop().set_exception_handler(None)

    async def add(
        self,
        node_id: str,
        peers: list[str],
        *,
        port: int = 0,
        secret: bytes = SECRET,
        on_message: Callable[[Message], None] | None = None,
        **options: Any,
    ) -> Node:
        inbox: list[Message] = []
        options.setdefault("backoff_max", 0.2)
        node = Node(
            Transport(
                node_id,
                (LOCAL, port),
                {peer: NOWHERE for peer in peers},
                secret,
                on_message or inbox.append,
                on_peer_change=lambda peer, up: node.peer_events.append((peer, up)),
                **options,
            ),
            inbox,
        )
        await node.transport.start()
        self.nodes[node_id] = node
        return node

    def wire_up(self) -> None:
        """Tell every node where each of its configured peers listens."""
        for node in self.nodes.values():
            for peer in node.transport.peers:
                if peer in self.nodes:
                    node.transport.set_peer_address(peer, (LOCAL, self.nodes[peer].port))

    async def connected(self) -> None:
        pairs = [
            (n, peer)
            for n in self.nodes.values()
            for peer in n.transport.peers
            if peer in self.nodes
        ]
        await eventually(lambda: all(n.transport.reachable(peer) for n, peer in pairs))


def counter_changes(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def only_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


def run_on_uvloop(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    uvloop.run(scenario())


# ---------------------------------------------------------------- delivery


async def two_way_exchange() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"])
        b = await cluster.add("b", ["a"])
        cluster.wire_up()
        await cluster.connected()
        to_b = [message("a", "b", i) for i in range(500)]
        to_a = [message("b", "a", i) for i in range(500)]
        for m_ab, m_ba in zip(to_b, to_a, strict=True):
            a.transport.send(m_ab)
            b.transport.send(m_ba)
        await eventually(lambda: len(a.inbox) == len(to_a) and len(b.inbox) == len(to_b))
        assert b.inbox == to_b  # same messages, same order
        assert a.inbox == to_a
        assert (a.transport.sent, a.transport.received) == (500, 500)
        assert (b.transport.sent, b.transport.received) == (500, 500)
        assert a.peer_events == [("b", True)]
        assert b.peer_events == [("a", True)]
        assert set(counter_changes({}, a.transport.dropped)) == set()
        assert cluster.errors == []
    assert only_task_left()


async def test_two_transports_exchange_messages_in_order_both_ways() -> None:
    await two_way_exchange()


def test_two_transports_exchange_messages_on_uvloop() -> None:
    run_on_uvloop(two_way_exchange)


async def test_three_transports_deliver_every_pair_in_order() -> None:
    async with Cluster() as cluster:
        ids = ["n1", "n2", "n3"]
        for node_id in ids:
            await cluster.add(node_id, [p for p in ids if p != node_id])
        cluster.wire_up()
        await cluster.connected()
        expected: dict[tuple[str, str], list[Message]] = {}
        for i in range(200):
            for frm in ids:
                for to in ids:
                    if frm != to:
                        m = message(frm, to, i)
                        expected.setdefault((frm, to), []).append(m)
                        cluster.nodes[frm].transport.send(m)
        await eventually(lambda: all(len(cluster.nodes[n].inbox) == 400 for n in ids))
        for (frm, to), sent in expected.items():
            assert [m for m in cluster.nodes[to].inbox if m.frm == frm] == sent
        assert cluster.errors == []


async def test_a_burst_goes_out_in_one_write() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"])
        b = await cluster.add("b", ["a"])
        cluster.wire_up()
        await cluster.connected()
        writes_before = a.transport.stats.writes
        burst = [message("a", "b", i) for i in range(1000)]
        for m in burst:  # no await in between: the sender finds all of them queued
            a.transport.send(m)
        await eventually(lambda: len(b.inbox) == len(burst))
        assert b.inbox == burst
        assert a.transport.stats.writes == writes_before + 1


async def test_flush_writes_what_is_queued_at_once_and_once() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"])
        b = await cluster.add("b", ["a"])
        cluster.wire_up()
        await cluster.connected()
        writes_before = a.transport.stats.writes
        sent = [message("a", "b", i) for i in range(3)]
        for m in sent:
            a.transport.send(m)
        assert a.transport.stats.writes == writes_before  # queued for the end of the turn
        a.transport.flush()  # no await: written now, in one write
        assert a.transport.stats.writes == writes_before + 1
        await eventually(lambda: len(b.inbox) == len(sent))
        assert b.inbox == sent
        assert a.transport.stats.writes == writes_before + 1  # the end of the turn: nothing left
        assert cluster.errors == []


async def test_large_message_is_delivered_and_one_over_the_limit_is_not_sent() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"], max_frame_bytes=64 * 1024)
        b = await cluster.add("b", ["a"], max_frame_bytes=64 * 1024)
        cluster.wire_up()
        await cluster.connected()
        big = Message(MsgType.SNAP, to="b", frm="a", data=b"s" * 60_000, done=True)
        too_big = Message(MsgType.SNAP, to="b", frm="a", data=b"s" * 70_000)
        after = message("a", "b", 1)
        for m in (big, too_big, after):
            a.transport.send(m)
        await eventually(lambda: len(b.inbox) == 2)
        assert b.inbox == [big, after]
        assert a.transport.dropped["too_large"] == 1
        assert a.transport.reachable("b")  # the connection survived


async def test_unknown_recipient_and_self_are_counted_not_raised() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"])
        a.transport.send(message("a", "zz", 1))
        a.transport.send(message("a", "a", 2))
        assert a.transport.dropped["unknown_peer"] == 2
        assert a.transport.queued("b") == 0


async def test_a_raising_on_message_does_not_cost_later_messages() -> None:
    received: list[Message] = []

    def fussy(m: Message) -> None:
        received.append(m)
        if m.index == 0:
            raise RuntimeError("receiver bug")

    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"])
        await cluster.add("b", ["a"], on_message=fussy)
        cluster.wire_up()
        await cluster.connected()
        msgs = [message("a", "b", i) for i in range(3)]
        for m in msgs:
            a.transport.send(m)
        await eventually(lambda: len(received) == 3)
        assert received == msgs


# ---------------------------------------------------------------- reachability, queues


async def test_queue_is_bounded_while_the_peer_is_down() -> None:
    async with Cluster() as cluster:
        limit = 64
        a = await cluster.add("a", ["b"], send_queue_limit=limit)  # b never comes up
        # send() is a plain call, not a coroutine: it cannot wait for the peer.
        assert not inspect.iscoroutinefunction(Transport.send)
        for i in range(10 * limit):
            a.transport.send(message("a", "b", i))
        assert a.transport.queued("b") == limit
        assert a.transport.dropped["queue_full"] == 9 * limit
        assert not a.transport.reachable("b")
        assert a.transport.sent == 0


async def reconnect_after_restart() -> None:
    limit = 32
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"], send_queue_limit=limit)
        b = await cluster.add("b", ["a"])
        cluster.wire_up()
        await cluster.connected()
        first = [message("a", "b", i) for i in range(10)]
        for m in first:
            a.transport.send(m)
        await eventually(lambda: len(b.inbox) == 10)
        b_port = b.port

        await b.transport.stop()
        await eventually(lambda: not a.transport.reachable("b"))
        assert a.peer_events == [("b", True), ("b", False)]
        while_down = [message("a", "b", 100 + i) for i in range(10 * limit)]
        for m in while_down:
            a.transport.send(m)
        assert a.transport.queued("b") == limit
        assert a.transport.dropped["queue_full"] == 9 * limit

        b2 = await cluster.add("b", ["a"], port=b_port)  # same address as before
        b2.transport.set_peer_address("a", (LOCAL, a.port))
        await eventually(lambda: a.transport.reachable("b") and b2.transport.reachable("a"))
        after = [message("a", "b", 1000 + i) for i in range(10)]
        for m in after:
            a.transport.send(m)
        await eventually(lambda: len(b2.inbox) == limit + len(after))
        # What was queued while b was away goes first, in order, then the new traffic.
        assert b2.inbox == while_down[:limit] + after
        assert a.peer_events == [("b", True), ("b", False), ("b", True)]
        assert cluster.errors == []
    assert only_task_left()


async def test_reconnects_after_the_peer_restarts_on_the_same_port() -> None:
    await reconnect_after_restart()


def test_reconnects_after_the_peer_restarts_on_uvloop() -> None:
    run_on_uvloop(reconnect_after_restart)


async def test_mismatched_secrets_never_connect() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"])
        b = await cluster.add("b", ["a"], secret=b"some-other-secret")
        cluster.wire_up()
        a.transport.send(message("a", "b", 1))
        b.transport.send(message("b", "a", 1))
        await eventually(
            lambda: (
                a.transport.dropped["auth_failed"] >= 2 and b.transport.dropped["auth_failed"] >= 2
            )
        )
        assert not a.transport.reachable("b") and not b.transport.reachable("a")
        assert a.inbox == [] and b.inbox == []
        assert a.peer_events == [] and b.peer_events == []


async def test_a_node_with_an_unexpected_id_at_the_peer_address_is_refused() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b"])
        impostor = await cluster.add("c", ["a"])
        a.transport.set_peer_address("b", (LOCAL, impostor.port))
        await eventually(lambda: a.transport.dropped["auth_failed"] >= 1)
        assert not a.transport.reachable("b")


async def test_stop_is_clean_and_idempotent() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("a", ["b", "c"])  # c never exists: a keeps redialing it
        b = await cluster.add("b", ["a"])
        cluster.wire_up()
        await cluster.connected()
        a.transport.send(message("a", "b", 1))
        await eventually(lambda: len(b.inbox) == 1)
        await a.transport.stop()
        await b.transport.stop()
        await a.transport.stop()
        assert only_task_left()
        assert not a.transport.reachable("b")
        # Nothing is reported after stop() began (b may have seen a go down before its own stop).
        assert a.peer_events == [("b", True)]


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
