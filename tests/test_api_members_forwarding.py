"""Membership changes sent to a follower run on the leader; who may read and change them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from pytest_aiohttp import AiohttpClient

from raft3d.api.auth import required_role
from raft3d.node.errors import ConfChangeInProgressError
from raft3d.node.status import MemberInfo
from tests.support.fakes import FakeNode, forwarded_by, make_app, peers_named
from tests.support.members_api import N2, NEW, Client, error
from tests.support.secure import bearer
from tests.test_api_auth import auth_settings
from tests.test_api_members import CHANGES

PRINTER = {"id": "p1", "company": "Creality", "model": "Ender 3"}


@pytest.fixture
def node() -> FakeNode:
    node = FakeNode("n1")
    node.members.append(N2)
    return node


# --- forwarding to the leader -----------------------------------------------------------


class Pair:
    def __init__(self, follower: Client, leader: Client, f: FakeNode, ld: FakeNode) -> None:
        self.follower, self.leader = follower, leader
        self.follower_node, self.leader_node = f, ld
        self.seen: list[web.Request] = []


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
    follower_node = FakeNode(
        "f1", leader_id="leader", leader_http=f"http://{leader.host}:{leader.port}"
    )
    follower = await aiohttp_client(make_app(follower_node, members=peers_named("f1", "leader")))
    result = Pair(follower, leader, follower_node, leader_node)
    result.seen = seen
    return result


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
async def test_changes_on_a_follower_run_on_the_leader(
    pair: Pair, method: str, path: str, body: dict[str, Any] | None
) -> None:
    pair.leader_node.members.append(N2)
    pair.follower_node.members.append(N2)
    response = await pair.follower.request(method, path, json=body)
    assert response.status in (200, 201), await response.text()
    assert response.headers["X-Raft3D-Node"] == "leader"
    assert len(pair.leader_node.member_calls) == 1
    assert len(pair.follower_node.member_calls) == 1  # tried, was told it is not the leader
    (forwarded,) = pair.seen
    assert forwarded.headers["X-Raft3D-Forwarded-By"] == "f1"
    assert forwarded.path_qs == path


async def test_leaders_refusal_is_relayed_and_bad_input_never_forwarded(pair: Pair) -> None:
    pair.leader_node.fail_member_changes(ConfChangeInProgressError(9))
    response = await pair.follower.post("/cluster/members", json=NEW)
    assert await error(response) == (409, "change_in_progress")
    assert response.headers["X-Raft3D-Node"] == "leader"
    response = await pair.follower.post("/cluster/members", json={**NEW, "raft_addr": "x"})
    assert await error(response) == (400, "invalid_address")
    assert len(pair.seen) == 1


async def test_forwarded_change_is_not_forwarded_again(pair: Pair) -> None:
    body = json.dumps(NEW).encode()
    response = await pair.follower.post(
        "/cluster/members",
        data=body,
        headers=forwarded_by("leader", "POST", "/cluster/members", body),
    )
    assert await error(response) == (503, "not_leader")
    assert response.headers["X-Raft3D-Not-Leader"] == "leader"
    assert pair.seen == []


async def test_leader_address_found_in_the_configuration(aiohttp_client: AiohttpClient) -> None:
    # The leader joined after this node was configured: only the configuration names it.
    leader_node = FakeNode("n4")
    leader_node.members.append(MemberInfo("f1", "h:1", "http://h:2", "voter", True, 1))
    leader = await aiohttp_client(make_app(leader_node))
    follower_node = FakeNode("f1", leader_id="n4")
    url = f"http://{leader.host}:{leader.port}"
    follower_node.members.append(MemberInfo("n4", "127.0.0.1:9", url, "voter", True, None))
    follower = await aiohttp_client(make_app(follower_node))
    response = await follower.post("/cluster/leader")
    assert response.status == 200
    assert await response.json() == {"leader_id": "f1"}
    assert leader_node.member_calls == [("transfer", {"target": None})]


async def test_no_leader_within_the_budget_is_503(aiohttp_client: AiohttpClient) -> None:
    node = FakeNode("n1")
    node.leader_id = None
    client = await aiohttp_client(make_app(node, request_timeout_s=0.2))
    response = await client.post("/cluster/members", json=NEW)
    assert await error(response) == (503, "no_leader")
    assert len(node.member_calls) > 1  # polled for a leader until the deadline


# --- roles ------------------------------------------------------------------------------


@pytest.fixture
async def secured(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    app = make_app(node, auth=auth_settings(), members=peers_named("n1", "n2"))
    return await aiohttp_client(app)


async def test_reading_needs_a_viewer_changing_needs_an_admin(
    secured: Client, node: FakeNode
) -> None:
    for path in ("/cluster/members", "/raft/state"):
        assert (await secured.get(path)).status == 401
        assert (await secured.get(path, headers=bearer("viewer"))).status == 200
    for method, path, body in CHANGES:
        for role in ("viewer", "operator"):
            response = await secured.request(method, path, json=body, headers=bearer(role))
            assert await error(response) == (403, "forbidden"), (method, path, role)
    assert node.member_calls == []
    for method, path, body in CHANGES:
        node.leader_id = "n1"
        response = await secured.request(method, path, json=body, headers=bearer("admin"))
        assert response.status in (200, 201, 404, 409), (method, path)
    assert len(node.member_calls) == len(CHANGES)


async def test_a_member_that_joined_later_may_forward(secured: Client, node: FakeNode) -> None:
    body = json.dumps(NEW).encode()
    response = await secured.post(
        "/cluster/members", data=body, headers=forwarded_by("n7", "POST", "/cluster/members", body)
    )
    assert await error(response) == (401, "unauthenticated_forward")  # not a member (yet)
    node.members.append(MemberInfo("n7", "h7:1", "http://h7:2", "voter", True, None))
    response = await secured.post(
        "/cluster/members", data=body, headers=forwarded_by("n7", "POST", "/cluster/members", body)
    )
    assert response.status == 201


def test_required_roles_of_the_membership_routes() -> None:
    assert required_role("GET", "/cluster/members") == "viewer"
    assert required_role("GET", "/raft/state") == "viewer"
    for method, path in (
        ("POST", "/cluster/members"),
        ("POST", "/cluster/members/n2/promote"),
        ("DELETE", "/cluster/members/n2"),
        ("POST", "/cluster/leader"),
        ("POST", "/join"),
        ("DELETE", "/cluster/servers"),
    ):
        assert required_role(method, path) == "admin", (method, path)


async def test_a_removed_node_sends_clients_to_the_members(pair: Pair) -> None:
    pair.follower_node.suffrage = "removed"
    pair.follower_node.members[:] = [N2]  # the configuration it last had, without itself
    for method, path, body in (("POST", "/api/v1/printers", PRINTER), *CHANGES):
        response = await pair.follower.request(method, path, json=body)
        assert await error(response) == (503, "node_removed"), (method, path)
        details = (await response.json())["error"]["details"]
        assert details == {"members": ["http://127.0.0.1:8081"]}
    assert pair.seen == []  # nothing was forwarded
    assert pair.follower_node.member_calls == [] and pair.follower_node.proposals == []
