"""Membership endpoints (SPEC §6) over a fake node: inputs, error mapping, forwarding
to the leader, roles."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from raft3d.node.errors import (
    ConfChangeError,
    ConfChangeInProgressError,
    LeadershipTransferError,
    LearnerNotCaughtUpError,
    MemberExistsError,
    NoCommitInTermError,
    NodeStoppedError,
    TransferRefusedError,
    UnknownMemberError,
    WouldLoseQuorumError,
)
from raft3d.node.status import MemberInfo
from tests.support.fakes import FakeNode, make_app
from tests.support.members_api import NEW, Client, error, member_ids, two_member_node


@pytest.fixture
def node() -> FakeNode:
    return two_member_node()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    return await aiohttp_client(make_app(node))


# --- listing ----------------------------------------------------------------------------


async def test_list_members_is_the_nodes_view(client: Client, node: FakeNode) -> None:
    node.members.append(MemberInfo("n0", "127.0.0.1:9000", "http://h0:1", "learner", False, None))
    response = await client.get("/cluster/members")
    assert response.status == 200
    assert await response.json() == {
        "config_index": 0,
        "change_pending": False,
        "members": [
            {
                "node_id": "n1",
                "raft_addr": "127.0.0.1:2",
                "http_addr": "http://127.0.0.1:1",
                "suffrage": "voter",
                "reachable": True,
                "match_index": None,
            },
            {
                "node_id": "n2",
                "raft_addr": "127.0.0.1:9002",
                "http_addr": "http://127.0.0.1:8081",
                "suffrage": "voter",
                "reachable": True,
                "match_index": 7,
            },
            {
                "node_id": "n0",
                "raft_addr": "127.0.0.1:9000",
                "http_addr": "http://h0:1",
                "suffrage": "learner",
                "reachable": False,
                "match_index": None,
            },
        ],
    }
    assert await error(await client.get("/cluster/members?x=1")) == (400, "invalid_query")


# --- adding -----------------------------------------------------------------------------


async def test_add_member_answers_201_with_the_committed_configuration(
    client: Client, node: FakeNode
) -> None:
    response = await client.post("/cluster/members", json=NEW)
    assert response.status == 201
    body = await response.json()
    assert member_ids(body) == [("n1", "voter"), ("n2", "voter"), ("n4", "learner")]
    assert body["config_index"] == 1
    assert "cluster_id" not in body  # the node does not know one yet
    assert node.member_calls == [("add", {**NEW, "promote": True})]

    node.cluster_id = "c-1234"
    again = {"node_id": "n5", "raft_addr": "h5:1", "http_addr": "https://h5:2", "promote": False}
    response = await client.post("/cluster/members", json=again)
    assert response.status == 201
    assert (await response.json())["cluster_id"] == "c-1234"
    assert node.member_calls[-1] == ("add", again)


async def test_addresses_come_out_in_one_spelling(client: Client, node: FakeNode) -> None:
    body = {"node_id": "n4", "raft_addr": "Node4.Example:9004", "http_addr": "HTTP://Node4:80/"}
    assert (await client.post("/cluster/members", json=body)).status == 201
    assert node.member_calls[-1][1]["raft_addr"] == "node4.example:9004"
    assert node.member_calls[-1][1]["http_addr"] == "http://node4:80"
    body = {"node_id": "n6", "raft_addr": "[::1]:9006", "http_addr": "http://[::1]:8086"}
    assert (await client.post("/cluster/members", json=body)).status == 201
    assert node.member_calls[-1][1]["raft_addr"] == "[::1]:9006"
    assert node.member_calls[-1][1]["http_addr"] == "http://[::1]:8086"


@pytest.mark.parametrize(
    "raft_addr",
    [
        "",
        "nohost",
        "host:",
        ":9004",
        "host:0",
        "host:65536",
        "host:9x",
        "host:+1",
        "ho st:1",
        "-host:1",
        "[zz]:1",
        "host:1:2",
        "h\u00e9:1",
        "a..b:1",
        "x" * 300 + ":1",
    ],
)
async def test_bad_raft_address_is_400_invalid_address(
    client: Client, node: FakeNode, raft_addr: str
) -> None:
    response = await client.post("/cluster/members", json={**NEW, "raft_addr": raft_addr})
    assert await error(response) == (400, "invalid_address")
    assert "raft_addr" in (await response.json())["error"]["details"]
    assert node.member_calls == []


@pytest.mark.parametrize(
    "http_addr",
    [
        "",
        "127.0.0.1:8083",
        "ftp://h:1",
        "http://",
        "http://h:0",
        "http://h:70000",
        "http://h:1/path",
        "http://h:1?q=1",
        "http://h:1#f",
        "http://u:p@h:1",
        "http://h_1:1",
        "//h:1",
        "http://[::zz]:1",
    ],
)
async def test_bad_http_address_is_400_invalid_address(
    client: Client, node: FakeNode, http_addr: str
) -> None:
    response = await client.post("/cluster/members", json={**NEW, "http_addr": http_addr})
    assert await error(response) == (400, "invalid_address")
    assert "http_addr" in (await response.json())["error"]["details"]
    assert node.member_calls == []


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in NEW.items() if k != "node_id"},
        {k: v for k, v in NEW.items() if k != "raft_addr"},
        {k: v for k, v in NEW.items() if k != "http_addr"},
        {**NEW, "voter": True},
        {**NEW, "node_id": 4},
        {**NEW, "node_id": ""},
        {**NEW, "node_id": "n 4"},
        {**NEW, "node_id": "-n4"},
        {**NEW, "node_id": "n" * 65},
        {**NEW, "node_id": None},
        {**NEW, "raft_addr": 9004},
        {**NEW, "http_addr": ["http://h:1"]},
        {**NEW, "promote": 1},
        {**NEW, "promote": "true"},
        {**NEW, "promote": None},
    ],
)
async def test_bad_body_is_400_and_reaches_no_node(
    client: Client, node: FakeNode, body: dict[str, Any]
) -> None:
    assert await error(await client.post("/cluster/members", json=body)) == (400, "invalid_body")
    assert node.member_calls == []


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "invalid_json"), (b"[1]", "invalid_json"), (b"{", "invalid_json")],
)
async def test_body_that_is_not_an_object_is_400(
    client: Client, node: FakeNode, data: bytes, code: str
) -> None:
    response = await client.post(
        "/cluster/members", data=data, headers={"Content-Type": "application/json"}
    )
    assert await error(response) == (400, code)
    assert node.member_calls == []


async def test_adding_an_existing_member_is_409_naming_it(client: Client, node: FakeNode) -> None:
    same = {"node_id": "n2", "raft_addr": "127.0.0.1:9002", "http_addr": "http://127.0.0.1:8081"}
    response = await client.post("/cluster/members", json=same)
    assert await error(response) == (409, "member_exists")
    details = (await response.json())["error"]["details"]
    assert details["node_id"] == "n2"
    assert details["member"]["raft_addr"] == "127.0.0.1:9002"
    assert details["member"]["http_addr"] == "http://127.0.0.1:8081"
    assert [m.node_id for m in node.membership().members] == ["n1", "n2"]


# --- the node's refusals ----------------------------------------------------------------


REFUSALS = [
    (MemberExistsError("n4"), 409, "member_exists"),
    (ConfChangeInProgressError(12), 409, "change_in_progress"),
    (NoCommitInTermError(), 409, "change_in_progress"),
    (UnknownMemberError("n4"), 404, "unknown_member"),
    (WouldLoseQuorumError("n2", 1, 2), 409, "would_lose_quorum"),
    (TransferRefusedError("n2 is behind"), 409, "transfer_refused"),
    (LearnerNotCaughtUpError("n2", 0, 40), 409, "not_caught_up"),
    (ConfChangeError("cannot remove 'n1': it is the last voter"), 409, "conf_change_refused"),
    (TimeoutError(), 504, "timeout"),
    (LeadershipTransferError("n2"), 503, "transfer_in_progress"),
    (NodeStoppedError("stopping"), 503, "node_stopped"),
]
CHANGES = [
    ("POST", "/cluster/members", NEW),
    ("POST", "/cluster/members/n2/promote", None),
    ("DELETE", "/cluster/members/n2", None),
    ("POST", "/cluster/leader", {"node_id": "n2"}),
    ("POST", "/join?node_id=n4&addr=127.0.0.1:9004&http=http://127.0.0.1:8083", None),
    ("DELETE", "/cluster/servers?id=n2", None),
]


@pytest.mark.parametrize(("exc", "status", "code"), REFUSALS)
@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
async def test_each_refusal_has_its_status_and_code_and_changes_nothing(
    client: Client,
    node: FakeNode,
    exc: BaseException,
    status: int,
    code: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    node.fail_member_changes(exc)
    response = await client.request(method, path, json=body)
    assert await error(response) == (status, code)
    assert len(node.member_calls) == 1
    assert [m.node_id for m in node.membership().members] == ["n1", "n2"]
    assert node.config_index == 0
    if status in (503, 504):
        assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["message"]


# --- promote, remove, transfer ----------------------------------------------------------


async def test_promote_remove_and_force(client: Client, node: FakeNode) -> None:
    node.members.append(MemberInfo("n3", "h3:1", "http://h3:2", "learner", False, 0))
    response = await client.post("/cluster/members/n3/promote")
    assert response.status == 200
    assert ("n3", "voter") in member_ids(await response.json())
    assert node.member_calls[-1] == ("promote", {"node_id": "n3", "force": False})
    assert (await client.post("/cluster/members/n3/promote?force=true")).status == 200
    assert node.member_calls[-1] == ("promote", {"node_id": "n3", "force": True})
    response = await client.delete("/cluster/members/n3?force=true")
    assert response.status == 200
    assert member_ids(await response.json()) == [("n1", "voter"), ("n2", "voter")]
    assert node.member_calls[-1] == ("remove", {"node_id": "n3", "force": True})
    assert (await client.delete("/cluster/members/n2?force=FALSE")).status == 200
    assert node.member_calls[-1] == ("remove", {"node_id": "n2", "force": False})
    response = await client.delete("/cluster/members/n9")
    assert await error(response) == (404, "unknown_member")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected"),
    [
        ("DELETE", "/cluster/members/n2?force=yes", {}, (400, "invalid_query")),
        ("DELETE", "/cluster/members/n2?force=true&force=true", {}, (400, "invalid_query")),
        ("DELETE", "/cluster/members/n2?other=1", {}, (400, "invalid_query")),
        ("DELETE", "/cluster/members/n2", {"json": {"force": True}}, (400, "invalid_body")),
        ("DELETE", "/cluster/members/a%0Ab", {}, (404, "unknown_member")),
        ("DELETE", "/cluster/members/" + "n" * 129, {}, (404, "unknown_member")),
        ("DELETE", "/cluster/members/n%E2%80%8B", {}, (404, "unknown_member")),
        ("POST", "/cluster/members/n2/promote", {"json": {"x": 1}}, (400, "invalid_body")),
        ("POST", "/cluster/members/n2/promote?x=1", {}, (400, "invalid_query")),
        ("POST", "/cluster/members/%00/promote", {}, (404, "unknown_member")),
        ("POST", "/cluster/leader", {"json": {"node_id": 2}}, (400, "invalid_body")),
        ("POST", "/cluster/leader", {"json": {"target": "n2"}}, (400, "invalid_body")),
        (
            "POST",
            "/cluster/leader",
            {"data": b"[]", "headers": {"Content-Type": "application/json"}},
            (400, "invalid_json"),
        ),
        ("POST", "/cluster/leader?x=1", {}, (400, "invalid_query")),
    ],
)
async def test_bad_change_requests_are_refused_before_the_node(
    client: Client,
    node: FakeNode,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    assert await error(await client.request(method, path, **kwargs)) == expected
    assert node.member_calls == []


async def test_transfer_leadership(client: Client, node: FakeNode) -> None:
    response = await client.post("/cluster/leader")
    assert response.status == 200
    assert await response.json() == {"leader_id": "n2"}
    assert node.member_calls == [("transfer", {"target": None})]
    node.leader_id = "n1"
    response = await client.post("/cluster/leader", json={"node_id": "n2"})
    assert await response.json() == {"leader_id": "n2"}
    assert node.member_calls[-1] == ("transfer", {"target": "n2"})
    node.leader_id = "n1"
    response = await client.post("/cluster/leader", json={})
    assert response.status == 200
