"""raft3d.transport over real loopback sockets: delivery, reconnects and bounds (hostile input
and the protocol's details have files of their own)."""

from __future__ import annotations

import inspect

from raft3d.consensus.types import Message, MsgType
from raft3d.transport import Transport
from tests.support.transports import (
    LOCAL,
    Cluster,
    counter_changes,
    message,
    only_task_left,
    run_on_uvloop,
)
from tests.support.waiting import eventually

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
        queued = [a.transport.send(message("a", "b", i)) for i in range(10 * limit)]
        assert a.transport.queued("b") == limit
        assert a.transport.dropped["queue_full"] == 9 * limit
        # The sender is told which were dropped at once: never sent, so never in doubt.
        assert queued == [True] * limit + [False] * (9 * limit)
        assert a.transport.send(message("a", "nobody", 0)) is False
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
