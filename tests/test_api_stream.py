"""``GET /api/v1/events/stream`` with real readers over loopback HTTP (issue 8, item 3)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from raft3d.api import create_app
from raft3d.config import HttpSettings, api_options
from raft3d.domain import CreatePrinter, FarmStateMachine, encode_command
from raft3d.domain.results import Result
from raft3d.node.driver import RaftNode
from raft3d.node.wiring import build_node
from tests.support.fakes import FakeNode, make_app
from tests.support.settings import node_settings
from tests.support.waiting import eventually

Client = TestClient[web.Request, web.Application]
STREAM = "/api/v1/events/stream"


def printer(n: int, company: str = "Creality") -> dict[str, str]:
    return {"id": f"p{n}", "company": company, "model": "Ender 3"}


class SseReader:
    """Reads one Server-Sent Events stream: events as dicts, comments counted."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next_event(self, timeout: float = 10.0) -> dict[str, str]:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if not line:
                if fields.keys() & {"id", "event", "data"}:
                    return fields
                fields = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(": ")
                fields[name] = value

    async def comment(self, timeout: float = 10.0) -> str:
        async def wait() -> str:
            while not self.comments:
                await self._next_line_or_event()
            return self.comments.pop(0)

        return await asyncio.wait_for(wait(), timeout)

    async def _next_line_or_event(self) -> None:
        raw = await self.response.content.readline()
        if not raw:
            raise EOFError("the stream ended")
        line = raw.decode()
        if line.startswith(":"):
            self.comments.append(line[1:].strip())


async def events_page(client: Client, after: int = 0) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/events?after={after}&limit=1000")
    assert response.status == 200
    body = await response.json()
    events: list[dict[str, Any]] = body["events"]
    return events


@pytest.fixture
def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    return await aiohttp_client(make_app(node, sse_heartbeat_s=0.2))


async def test_the_stream_replays_then_follows_with_the_events_endpoint_shape(
    client: Client,
) -> None:
    for n in range(3):
        assert (await client.post("/api/v1/printers", json=printer(n))).status == 201
    response = await client.get(f"{STREAM}?after=0")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    reader = SseReader(response)
    replayed = [await reader.next_event() for _ in range(3)]
    assert (await client.post("/api/v1/printers", json=printer(0))).status == 409  # refused
    live = await reader.next_event()
    expected = await events_page(client)
    got = [*replayed, live]
    assert [int(e["id"]) for e in got] == [e["index"] for e in expected] == [1, 2, 3, 4]
    assert [e["event"] for e in got] == ["create_printer"] * 4
    assert [json.loads(e["data"]) for e in got] == expected
    assert expected[-1]["outcome"]["code"] == "duplicate_id"
    response.close()


async def test_last_event_id_resumes_exactly_after_it(client: Client) -> None:
    for n in range(5):
        await client.post("/api/v1/printers", json=printer(n))
    response = await client.get(STREAM, headers={"Last-Event-ID": "3"})
    reader = SseReader(response)
    assert [(await reader.next_event())["id"] for _ in range(2)] == ["4", "5"]
    await client.post("/api/v1/printers", json=printer(5))
    assert (await reader.next_event())["id"] == "6"
    response.close()


async def test_without_a_start_the_stream_begins_at_the_applied_index(client: Client) -> None:
    await client.post("/api/v1/printers", json=printer(1))
    response = await client.get(STREAM)
    reader = SseReader(response)
    await client.post("/api/v1/printers", json=printer(2))
    event = await reader.next_event()
    assert event["id"] == "2" and '"p2"' in event["data"]
    response.close()


async def test_idle_streams_get_heartbeat_comments(client: Client) -> None:
    response = await client.get(STREAM)
    reader = SseReader(response)
    assert await reader.comment() == "heartbeat"
    response.close()


async def test_a_start_below_the_retained_log_is_410_compacted(
    client: Client, node: FakeNode
) -> None:
    for n in range(4):
        await client.post("/api/v1/printers", json=printer(n))
    node.trailing_entries = 1
    assert (await client.post("/cluster/snapshots")).status == 201  # keeps entry 4 only
    for start in ({"headers": {"Last-Event-ID": "2"}}, {"params": {"after": "0"}}):
        response = await client.get(STREAM, **start)  # type: ignore[arg-type]
        assert response.status == 410
        body = await response.json()
        assert body["error"]["code"] == "compacted"
        assert body["error"]["details"] == {
            "after": int(body["error"]["details"]["after"]),
            "first_index": 4,
            "snapshot_index": 4,
        }
    ok = await client.get(STREAM, headers={"Last-Event-ID": "3"})
    assert ok.status == 200
    assert (await SseReader(ok).next_event())["id"] == "4"
    ok.close()


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "99999999999999999999"])
async def test_a_bad_last_event_id_is_400(client: Client, value: str) -> None:
    response = await client.get(STREAM, headers={"Last-Event-ID": value})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_header"


async def test_unknown_query_parameters_are_400(client: Client) -> None:
    response = await client.get(f"{STREAM}?limit=5")
    assert response.status == 400


async def test_a_halted_node_refuses_new_streams(client: Client, node: FakeNode) -> None:
    node.halted = "StorageError('disk full')"
    response = await client.get(STREAM)
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "halted"


# --- a slow reader against a real node ------------------------------------------------------


@pytest.fixture
async def real_node(tmp_path: Path) -> AsyncIterator[tuple[RaftNode[Result], TestServer]]:
    http = HttpSettings(sse_buffer_events=64, sse_heartbeat_s=0.5)
    settings = node_settings(tmp_path, http_settings=http)
    state = FarmStateMachine()
    node = build_node(settings, state)
    app = create_app(api_options(settings), node, state)
    await node.start()
    server = TestServer(app)
    await server.start_server()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        yield node, server
    finally:
        await server.close()
        await node.stop()


async def test_a_reader_that_does_not_read_is_cut_off_and_never_slows_the_node(
    real_node: tuple[RaftNode[Result], TestServer],
) -> None:
    node, server = real_node
    # A reader with a tiny receive window that sends its request and then never reads.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    await loop.sock_sendall(
        sock, f"GET {STREAM} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await eventually(lambda: len(node.event_listeners) == 1, 10, "the stream to subscribe")
    big = "x" * 4000
    # Far more than the socket buffers and the stream's 64-event buffer hold.
    for n in range(600):
        command = CreatePrinter(id=f"p{n}", company=big, model="M", idempotency=None)
        await asyncio.wait_for(node.propose(encode_command(command)), 10)
    await eventually(lambda: not node.event_listeners, 10, "the slow stream to be cut off")
    # Its connection is closed: reading what was buffered ends in EOF or a reset.
    received = bytearray()
    try:
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 10):
            received += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    assert b"retry: 1000" in received  # it was a stream...
    assert f"id: {node.applied_index}\n".encode() not in received  # ...cut off before the end
    # A fresh reader is served as usual.
    after = node.applied_index - 3
    url = f"http://127.0.0.1:{server.port}{STREAM}?after={after}"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        reader = SseReader(resp)
        ids = [int((await reader.next_event())["id"]) for _ in range(3)]
    assert ids == [after + 1, after + 2, after + 3]
