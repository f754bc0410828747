"""Writes: node errors, waiting for a leader, forwarding to the leader (idempotent retries
have a file of their own)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer

from raft3d.api.rendering import json_answer
from raft3d.config import Address, Member
from raft3d.node.errors import (
    EntryTooLargeError,
    ForwardLostError,
    NodeStoppedError,
    NotLeaderError,
    OutcomeUnknownError,
)
from tests.support.fakes import FakeNode, fake_settings, forwarded_by, make_app, peers_named
from tests.support.writes import JOB, PRINTER, Client, Handler, error_code, url_of

# --- node errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (OutcomeUnknownError(7, 2), 503, "outcome_unknown"),
        (ForwardLostError("n2", "the link to it was lost"), 503, "outcome_unknown"),
        (TimeoutError(), 503, "timeout"),
        (NodeStoppedError("stopping"), 503, "node_stopped"),
        (EntryTooLargeError(70_000, 65_536), 413, "entry_too_large"),
    ],
)
async def test_node_errors_map_to_statuses(
    aiohttp_client: AiohttpClient, error: BaseException, status: int, code: str
) -> None:
    node = FakeNode("n1")
    client = await aiohttp_client(make_app(node))
    node.fail_proposals(error)
    response = await client.post("/api/v1/printers", json=PRINTER)
    assert response.status == status
    assert error_code(await response.json()) == code
    if status == 503:
        assert response.headers["Retry-After"] == "1"
    assert node.state.printers() == []
    assert len(node.proposals) == 1  # not retried: the outcome is the node's to report


async def test_no_leader_within_the_timeout_is_503(aiohttp_client: AiohttpClient) -> None:
    node = FakeNode("n1")
    node.leader_id = None
    client = await aiohttp_client(make_app(node, request_timeout_s=0.2))
    response = await client.post("/api/v1/printers", json=PRINTER)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert error_code(await response.json()) == "no_leader"
    assert len(node.proposals) > 1  # it kept looking for a leader until the deadline
    assert node.state.printers() == []


async def test_write_waits_for_an_election(aiohttp_client: AiohttpClient) -> None:
    node = FakeNode("n1")
    client = await aiohttp_client(make_app(node))
    node.fail_proposals(NotLeaderError(None), NotLeaderError(None), NotLeaderError(None))
    response = await client.post("/api/v1/printers", json=PRINTER)
    assert response.status == 201
    assert len(node.proposals) == 4
    assert [p.id for p in node.state.printers()] == ["p1"]


# --- forwarding -------------------------------------------------------------------------


class Pair:
    """A follower app whose node names ``leader``, and the leader's app."""

    def __init__(self, follower: Client, leader: Client, f: FakeNode, ld: FakeNode) -> None:
        self.follower, self.leader = follower, leader
        self.follower_node, self.leader_node = f, ld
        self.seen: list[web.Request] = []  # requests that reached the leader's app


@pytest.fixture
async def pair(aiohttp_client: AiohttpClient) -> Pair:
    leader_node = FakeNode("leader")
    leader_app = make_app(leader_node, members=peers_named("leader", "f1"))
    seen: list[web.Request] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(request)
        return await handler(request)

    leader_app.middlewares.insert(0, record)
    leader = await aiohttp_client(leader_app)
    follower_node = FakeNode("f1", leader_id="leader", leader_http=url_of(leader))
    follower = await aiohttp_client(make_app(follower_node, members=peers_named("f1", "leader")))
    result = Pair(follower, leader, follower_node, leader_node)
    result.seen = seen
    return result


async def test_follower_forwards_writes_to_the_leader(pair: Pair) -> None:
    response = await pair.follower.post("/api/v1/printers", json=PRINTER)
    assert response.status == 201
    assert await response.json() == PRINTER
    assert response.headers["X-Raft3D-Node"] == "leader"  # the leader's headers, unchanged
    assert response.headers["X-Raft3D-Applied-Index"] == "1"
    assert [p.id for p in pair.leader_node.state.printers()] == ["p1"]
    assert pair.follower_node.state.printers() == []  # the fake does not replicate
    (forwarded,) = pair.seen
    assert forwarded.headers["X-Raft3D-Forwarded-By"] == "f1"
    assert forwarded.content_type == "application/json"
    assert 0 < int(forwarded.headers["X-Raft3D-Budget-Ms"]) <= 2000


async def test_forwarded_writes_reuse_one_connection_to_the_leader(pair: Pair) -> None:
    for n in range(5):
        response = await pair.follower.post("/api/v1/printers", json={**PRINTER, "id": f"p{n}"})
        assert response.status == 201
    assert len(pair.seen) == 5
    # One client port at the leader: the follower kept its connection alive between writes.
    ports = {_client_port(request) for request in pair.seen}
    assert len(ports) == 1, ports


def _client_port(request: web.Request) -> int:
    transport = request.transport
    assert transport is not None
    port: int = transport.get_extra_info("peername")[1]
    return port


async def test_forwarding_keeps_method_query_body_and_key(pair: Pair) -> None:
    for path, body in (
        ("/api/v1/printers", PRINTER),
        (
            "/api/v1/filaments",
            {"id": "f1", "type": "pla", "color": "red", "total_weight_in_grams": 9},
        ),
        ("/api/v1/print_jobs", JOB),
    ):
        assert (await pair.leader.post(path, json=body)).status == 201
    response = await pair.follower.put(
        "/api/v1/print_jobs/j1/status?status=running",
        headers={"Idempotency-Key": "k-1"},
        skip_auto_headers=["Content-Type"],
    )
    assert response.status == 200
    assert (await response.json())["status"] == "Running"
    forwarded = pair.seen[-1]
    assert forwarded.method == "PUT"
    assert forwarded.path_qs == "/api/v1/print_jobs/j1/status?status=running"
    assert forwarded.headers["Idempotency-Key"] == "k-1"
    assert "Content-Type" not in forwarded.headers  # none was sent, none is made up

    again = await pair.follower.put(
        "/api/v1/print_jobs/j1/status?status=running", headers={"Idempotency-Key": "k-1"}
    )
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_leaders_refusals_are_relayed_unchanged(pair: Pair) -> None:
    assert (await pair.leader.post("/api/v1/printers", json=PRINTER)).status == 201
    response = await pair.follower.post("/api/v1/printers", json=PRINTER)
    assert response.status == 409
    assert error_code(await response.json()) == "duplicate_id"
    assert response.headers["X-Raft3D-Node"] == "leader"


async def test_input_errors_are_answered_without_forwarding(pair: Pair) -> None:
    response = await pair.follower.post("/api/v1/printers", json={"company": 5})
    assert response.status == 400
    assert response.headers["X-Raft3D-Node"] == "f1"
    assert pair.seen == []


async def test_forwarded_write_is_not_forwarded_again(pair: Pair) -> None:
    # The follower knows a leader, but a forwarded request must not take a second hop.
    body = json.dumps(PRINTER).encode()
    response = await pair.follower.post(
        "/api/v1/printers",
        data=body,
        headers=forwarded_by("leader", "POST", "/api/v1/printers", body),
    )
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Raft3D-Not-Leader"] == "leader"
    assert error_code(await response.json()) == "not_leader"
    assert pair.seen == []


async def test_forwarder_looks_again_when_the_target_is_no_longer_leader(pair: Pair) -> None:
    pair.leader_node.fail_proposals(NotLeaderError("elsewhere"), NotLeaderError(None))
    response = await pair.follower.post("/api/v1/printers", json=PRINTER)
    assert response.status == 201
    assert len(pair.seen) == 3
    assert [p.id for p in pair.leader_node.state.printers()] == ["p1"]


async def test_unreachable_leader_is_retried_until_the_deadline(
    aiohttp_client: AiohttpClient,
) -> None:
    # n2's configured address has nothing listening: connections are refused at once.
    dead = Member("n2", Address("127.0.0.1", 1), Address("127.0.0.1", 2))
    own = Member("n1", Address("127.0.0.1", 3), Address("127.0.0.1", 4))
    node = FakeNode("n1", leader_id="n2")
    settings = fake_settings("n1", request_timeout_s=0.3, members=(own, dead))
    client = await aiohttp_client(make_app_with(settings, node))
    response = await client.post("/api/v1/printers", json=PRINTER)
    assert response.status == 503
    assert error_code(await response.json()) == "no_leader"
    assert len(node.proposals) > 1


def make_app_with(settings: Any, node: FakeNode) -> web.Application:
    from raft3d.api import create_app
    from raft3d.config import api_options

    return create_app(api_options(settings), node, node.state)


class FlakyLeader:
    """A stand-in leader whose first answer is lost: it drops the connection after reading."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        await request.read()
        if self.calls == 1:
            assert request.transport is not None
            request.transport.abort()  # the request arrived; the answer never leaves
            raise web.HTTPBadRequest  # not sent: the connection is gone
        return web.json_response(PRINTER, status=201, headers={"X-Raft3D-Node": "flaky"})


@pytest.fixture
async def flaky(aiohttp_server: AiohttpServer) -> tuple[FlakyLeader, TestServer]:
    leader = FlakyLeader()
    app = web.Application()
    app.router.add_post("/api/v1/printers", leader.handle)
    return leader, await aiohttp_server(app)


async def test_lost_answer_without_key_is_outcome_unknown(
    aiohttp_client: AiohttpClient, flaky: tuple[FlakyLeader, TestServer]
) -> None:
    leader, server = flaky
    node = FakeNode("n1", leader_id="n2", leader_http=url_of(server))
    client = await aiohttp_client(make_app(node))
    response = await client.post("/api/v1/printers", json=PRINTER)
    assert response.status == 503
    assert error_code(await response.json()) == "outcome_unknown"
    assert leader.calls == 1  # not re-sent: it might have been applied


async def test_lost_answer_with_key_is_safely_resent(
    aiohttp_client: AiohttpClient, flaky: tuple[FlakyLeader, TestServer]
) -> None:
    leader, server = flaky
    node = FakeNode("n1", leader_id="n2", leader_http=url_of(server))
    client = await aiohttp_client(make_app(node))
    response = await client.post(
        "/api/v1/printers", json=PRINTER, headers={"Idempotency-Key": "once"}
    )
    assert response.status == 201
    assert response.headers["X-Raft3D-Node"] == "flaky"
    assert leader.calls == 2


@pytest.mark.parametrize(
    "value",
    [{"id": "p1", "company": "Prusa", "model": "MK4"}, {"ünï": "cödé", "n": [1, 2.5, None]}],
)
def test_json_answer_is_what_json_response_sends(value: dict[str, object]) -> None:
    ours = json_answer(value, 201)
    theirs = web.json_response(value, status=201)
    assert ours.body == theirs.body
    assert ours.status == theirs.status == 201
    assert dict(ours.headers) == dict(theirs.headers)
