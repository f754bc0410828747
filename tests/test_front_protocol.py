"""The front socket protocol: every result and error survives the trip, frames are checked,
and many requests share one connection with answers in any order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
import pytest

from raft3d.api.errors import ServiceUnavailable
from raft3d.api.quotas import QuotaExceeded
from raft3d.consensus.membership import LeadershipTransferError
from raft3d.domain.results import Accepted, Rejected, RejectionCode, rejected
from raft3d.front import protocol
from raft3d.front.channel import NodeChannel
from raft3d.node.errors import (
    EntryTooLargeError,
    NodeStoppedError,
    NoLeaderError,
    NotLeaderError,
    OutcomeUnknownError,
)


def _over_the_wire(value: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


@pytest.mark.parametrize(
    "result",
    [
        Accepted({"id": "p1", "company": "C", "model": "M"}),
        Accepted({"id": "j1", "print_weight_in_grams": 10, "status": "Queued"}, replayed=True),
        rejected(RejectionCode.DUPLICATE_ID, "printer p1 exists", {"id": "p1"}),
        Rejected("insufficient_filament", "not enough", {"needed": 5, "free": 1}, replayed=True),
    ],
)
def test_every_result_survives_the_trip(result: Accepted | Rejected) -> None:
    assert protocol.decode_result(_over_the_wire(protocol.encode_result(result))) == result


def _same_error(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert str(a) == str(b)
    assert vars(a) == vars(b)


@pytest.mark.parametrize(
    "error",
    [
        OutcomeUnknownError(7, 2),
        EntryTooLargeError(70_000, 65_536),
        NoLeaderError("no leader within 5 s"),
        NodeStoppedError("stopping"),
        TimeoutError("no quorum"),
    ],
)
def test_every_node_error_survives_the_trip(error: Exception) -> None:
    back = protocol.decode_error(_over_the_wire(protocol.encode_error(error)))
    _same_error(back, error)


@pytest.mark.parametrize(
    "error", [NotLeaderError("n2"), NotLeaderError(None), LeadershipTransferError("n3")]
)
def test_what_only_the_node_app_can_answer_is_handed_back(error: Exception) -> None:
    back = protocol.decode_error(_over_the_wire(protocol.encode_error(error)))
    assert isinstance(back, protocol.HandBack)


def test_api_errors_keep_status_code_details_and_headers() -> None:
    quota = QuotaExceeded("quota_exceeded", "the farm holds 1 printers", {"limit": 1})
    back = protocol.decode_error(_over_the_wire(protocol.encode_error(quota)))
    assert isinstance(back, protocol.RemoteApiError)
    assert (back.status, back.code, back.message, back.details) == (
        409,
        "quota_exceeded",
        "the farm holds 1 printers",
        {"limit": 1},
    )
    unavailable = ServiceUnavailable("no_leader", "none")
    again = protocol.decode_error(_over_the_wire(protocol.encode_error(unavailable)))
    assert isinstance(again, protocol.RemoteApiError)
    assert again.to_response().headers.get("Retry-After") == unavailable.to_response().headers.get(
        "Retry-After"
    )
    assert again.status == 503


def test_an_unknown_error_is_an_internal_one() -> None:
    back = protocol.decode_error(_over_the_wire(protocol.encode_error(KeyError("x"))))
    assert isinstance(back, protocol.RemoteInternalError)
    assert "KeyError" in str(back)


@pytest.mark.parametrize("bad", [["x"], ["a"], ["r", "code"], 7, None])
def test_a_malformed_result_is_a_protocol_error(bad: object) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_result(bad)


@pytest.mark.parametrize("bad", [["nope"], ["outcome_unknown"], ["api", 409], 3, None])
def test_a_malformed_error_is_a_protocol_error(bad: object) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_error(bad)


async def _answer_in_reverse(path: Path, count: int, seen: list[Any]) -> asyncio.AbstractServer:
    """A node end that waits for ``count`` proposals, then answers the newest first."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unpacker = protocol.unpacker()
        frames: list[Any] = []
        while len(frames) < count:
            unpacker.feed(await reader.read(4096))
            frames.extend(unpacker)
        seen.extend(frames)
        for kind, request_id, command, _timeout in reversed(frames):
            assert kind == protocol.PROPOSE
            answer = protocol.encode_result(Accepted({"echo": command.decode()}))
            writer.write(msgpack.packb([protocol.RESULT, request_id, request_id * 10, answer]))
        await writer.drain()
        await reader.read()  # until the front closes
        writer.close()

    return await asyncio.start_unix_server(serve, str(path))


async def test_many_calls_share_one_connection_and_answers_find_their_caller(
    tmp_path: Path,
) -> None:
    path = tmp_path / "front.sock"
    seen: list[Any] = []
    server = await _answer_in_reverse(path, 3, seen)
    channel = await NodeChannel.connect(path, 0, timeout=5)
    try:
        answers = await asyncio.gather(
            *(channel.call(protocol.PROPOSE, f"c{i}".encode(), 1.0) for i in range(3))
        )
        for i, (kind, applied, payload) in enumerate(answers):
            assert kind == protocol.RESULT
            assert protocol.decode_result(payload) == Accepted({"echo": f"c{i}"})
            assert applied == seen[i][1] * 10
        assert len({frame[1] for frame in seen}) == 3  # three ids on one connection
        assert channel.applied_index == max(frame[1] for frame in seen) * 10
    finally:
        await channel.close()
        server.close()
        await server.wait_closed()


async def test_calls_in_flight_fail_when_the_node_goes_away(tmp_path: Path) -> None:
    path = tmp_path / "front.sock"

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # a request arrived: go away without answering
        writer.close()

    server = await asyncio.start_unix_server(hang_up, str(path))
    channel = await NodeChannel.connect(path, 0, timeout=5)
    try:
        with pytest.raises(NodeStoppedError):
            await asyncio.wait_for(channel.call(protocol.PROPOSE, b"c", 1.0), 5)
        assert channel.lost.is_set()
        with pytest.raises(NodeStoppedError):
            await channel.call(protocol.PROPOSE, b"c", 1.0)  # refused at once from now on
    finally:
        await channel.close()
        server.close()
        await server.wait_closed()
