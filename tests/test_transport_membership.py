"""The transport as membership changes it: peers linked and dropped at run time, strangers
accepted when asked to, and the cluster identity each side of a handshake states."""

from __future__ import annotations

import logging

import pytest

from raft3d.transport import wire
from raft3d.transport.transport import parse_address
from tests.support.transports import LOCAL, Cluster, message
from tests.support.waiting import eventually


def info(cluster_id: str, formed: bool = True, addr: str = "") -> wire.HandshakeInfo:
    return wire.HandshakeInfo(cluster_id, formed, addr)


def test_addresses_parse_or_are_refused() -> None:
    assert parse_address("127.0.0.1:7000") == ("127.0.0.1", 7000)
    assert parse_address("[::1]:7000") == ("::1", 7000)
    for bad in ("", "127.0.0.1", ":7000", "h:0", "h:65536", "h:x"):
        assert parse_address(bad) is None


def test_handshake_info_round_trips_and_malformed_info_is_refused() -> None:
    sent = info("c1", True, "127.0.0.1:9000")
    assert wire.decode_info(wire.encode_info(sent)) == sent
    for bad in (b"\xc1", wire._pack(["c1", 1, ""]), wire._pack(["c1", True])):
        with pytest.raises(wire.ProtocolViolation):
            wire.decode_info(bad)
    assert wire.clusters_differ(info("a"), info("b"))
    assert not wire.clusters_differ(info("a"), info(""))
    assert not wire.clusters_differ(info("a"), None)


async def test_a_peer_linked_at_run_time_is_dialed_and_a_dropped_one_forgotten() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("n1", [])
        b = await cluster.add("n2", ["n1"])
        cluster.wire_up()
        assert a.transport.connect_peer("n2", f"{LOCAL}:{b.port}")
        assert not a.transport.connect_peer("n3", "no-port")
        await eventually(lambda: a.transport.reachable("n2"), 10, "n1 to link to n2")
        a.transport.send(message("n1", "n2", 1))
        await eventually(lambda: len(b.inbox) == 1, 10, "delivery")
        a.transport.drop_peer("n2")
        assert "n2" not in a.transport.peers and not a.transport.reachable("n2")
        assert ("n2", False) in a.peer_events
        a.transport.send(message("n1", "n2", 2))
        assert a.transport.dropped["unknown_peer"] == 1
        # n2 dialing in is now refused: n1 no longer knows it.
        await eventually(lambda: a.transport.dropped["auth_failed"] >= 1, 10, "refusal")


async def test_a_stranger_is_accepted_when_asked_and_told_where_to_answer() -> None:
    heard: list[tuple[str, wire.HandshakeInfo]] = []
    async with Cluster() as cluster:
        joiner = await cluster.add(
            "n9",
            [],
            accept_unknown=lambda: True,
            local_info=lambda: info("", False, "127.0.0.1:1"),
            on_peer_info=lambda peer, i: heard.append((peer, i)),
        )
        leader = await cluster.add("n1", [], local_info=lambda: info("c1", True, "10.1.1.1:7"))
        assert leader.transport.connect_peer("n9", f"{LOCAL}:{joiner.port}")
        await eventually(lambda: leader.transport.reachable("n9"), 10, "the stranger to accept")
        assert heard == [("n1", info("c1", True, "10.1.1.1:7"))]
        leader.transport.send(message("n1", "n9", 1))
        await eventually(lambda: len(joiner.inbox) == 1, 10, "delivery to the joiner")


async def test_a_peer_of_another_cluster_is_refused_on_both_sides(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "raft3d.transport.transport")
    async with Cluster() as cluster:
        a = await cluster.add("n1", ["n2"], local_info=lambda: info("cluster-a"))
        b = await cluster.add("n2", ["n1"], local_info=lambda: info("cluster-b"))
        cluster.wire_up()

        def refused_thrice() -> bool:
            return all(t.dropped["cluster_id_mismatch"] >= 3 for t in (a.transport, b.transport))

        await eventually(refused_thrice, 15, "repeated refusals")
        assert not a.transport.reachable("n2") and not b.transport.reachable("n1")
        assert a.inbox == [] and b.inbox == []
        refusals = [r.getMessage() for r in caplog.records if "refusing peer" in r.getMessage()]
        # Logged once per peer on each side, though refused again and again.
        assert sorted(refusals) == sorted(
            [
                "refusing peer n2: it belongs to cluster cluster-b, this node to cluster cluster-a",
                "refusing peer n1: it belongs to cluster cluster-a, this node to cluster cluster-b",
            ]
        )


async def test_the_same_cluster_or_an_unknown_one_connects() -> None:
    async with Cluster() as cluster:
        a = await cluster.add("n1", ["n2", "n3"], local_info=lambda: info("c1"))
        b = await cluster.add("n2", ["n1"], local_info=lambda: info("c1"))
        c = await cluster.add("n3", ["n1"], local_info=lambda: info(""))
        cluster.wire_up()
        await cluster.connected()
        assert all(t.dropped["cluster_id_mismatch"] == 0 for t in (a.transport, b.transport))
        assert c.transport.dropped["cluster_id_mismatch"] == 0
