"""The seed aliases of the membership endpoints (``/raft/state``, ``/join``,
``/cluster/servers``) over a fake node."""

from __future__ import annotations

import pytest
from pytest_aiohttp import AiohttpClient

from tests.support.fakes import FakeNode, make_app
from tests.support.members_api import NEW, Client, error, member_ids, two_member_node


@pytest.fixture
def node() -> FakeNode:
    return two_member_node()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    return await aiohttp_client(make_app(node))


async def test_raft_state_is_one_word(client: Client, node: FakeNode) -> None:
    response = await client.get("/raft/state")
    assert (response.status, await response.text()) == (200, "Leader")
    assert response.content_type == "text/plain"
    node.leader_id = "n2"
    assert await (await client.get("/raft/state")).text() == "Follower"
    node.suffrage = "learner"
    assert await (await client.get("/raft/state")).text() == "Learner"
    assert await error(await client.get("/raft/state?x=1")) == (400, "invalid_query")


async def test_join_alias_adds_a_member(client: Client, node: FakeNode) -> None:
    response = await client.post(
        "/join?node_id=n4&addr=127.0.0.1:9004&http=http://127.0.0.1:8083&promote=false"
    )
    assert response.status == 200
    assert ("n4", "learner") in member_ids(await response.json())
    assert node.member_calls == [("add", {**NEW, "promote": False})]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("addr=h:1&http=http://h:2", (400, "invalid_query")),
        ("node_id=n4&http=http://h:2", (400, "invalid_query")),
        ("node_id=n4&addr=h:1", (400, "invalid_query")),
        ("node_id=n%204&addr=h:1&http=http://h:2", (400, "invalid_query")),
        ("node_id=n4&addr=h:1&http=http://h:2&voter=true", (400, "invalid_query")),
        ("node_id=n4&addr=h:1&http=http://h:2&promote=maybe", (400, "invalid_query")),
        ("node_id=n4&addr=h&http=http://h:2", (400, "invalid_address")),
        ("node_id=n4&addr=h:1&http=h:2", (400, "invalid_address")),
    ],
)
async def test_join_alias_checks_its_query(
    client: Client, node: FakeNode, query: str, expected: tuple[int, str]
) -> None:
    assert await error(await client.post(f"/join?{query}")) == expected
    assert node.member_calls == []


async def test_join_alias_takes_no_body(client: Client, node: FakeNode) -> None:
    response = await client.post("/join?node_id=n4&addr=h:1&http=http://h:2", json=NEW)
    assert await error(response) == (400, "invalid_body")
    assert node.member_calls == []


async def test_servers_alias_removes_a_member(client: Client, node: FakeNode) -> None:
    response = await client.delete("/cluster/servers?id=n2&force=true")
    assert response.status == 200
    assert member_ids(await response.json()) == [("n1", "voter")]
    assert node.member_calls == [("remove", {"node_id": "n2", "force": True})]
    for query in ("", "?id=", "?id=n2&x=1", "?id=n2&force=2"):
        assert await error(await client.delete(f"/cluster/servers{query}")) == (
            400,
            "invalid_query",
        )
    assert len(node.member_calls) == 1
