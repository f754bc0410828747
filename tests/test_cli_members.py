"""``raft3d members | join | remove | transfer`` against a node's HTTP API (a fake node)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from raft3d import cli
from raft3d.node.errors import WouldLoseQuorumError
from raft3d.node.status import MemberInfo
from tests.support.fakes import FakeNode, make_app
from tests.support.procs import free_ports
from tests.support.secure import TOKENS
from tests.test_api_auth import auth_settings

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def node() -> FakeNode:
    node = FakeNode("n1")
    node.members.append(
        MemberInfo("n2", "127.0.0.1:9002", "http://127.0.0.1:8081", "voter", True, 7)
    )
    return node


@pytest.fixture
async def url(aiohttp_client: AiohttpClient, node: FakeNode) -> str:
    client = await aiohttp_client(make_app(node))
    return f"http://{client.host}:{client.port}"


async def raft3d(*argv: str) -> int:
    # The commands block on their HTTP calls: run them beside the event loop serving the app.
    return await asyncio.to_thread(cli.main, list(argv))


async def test_members_prints_a_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await raft3d("members", "--url", url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NODE", "SUFFRAGE", "RAFT", "HTTP", "REACHABLE", "MATCH"]
    assert lines[1].split() == ["n1", "voter", "127.0.0.1:2", "http://127.0.0.1:1", "yes", "-"]
    assert lines[2].split() == [
        "n2",
        "voter",
        "127.0.0.1:9002",
        "http://127.0.0.1:8081",
        "yes",
        "7",
    ]
    assert lines[3] == "configuration index 0"


async def test_join_remove_transfer(
    url: str, node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--node-id", "n4", "--raft", "127.0.0.1:9004", "--http", "http://127.0.0.1:8083")
    assert await raft3d("join", url, *argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("n4 added as a learner; it is promoted to voter once caught up\n")
    assert "n4    learner" in out
    assert node.member_calls[-1] == (
        "add",
        {
            "node_id": "n4",
            "raft_addr": "127.0.0.1:9004",
            "http_addr": "http://127.0.0.1:8083",
            "promote": True,
        },
    )
    learner = ("--node-id", "n5", "--raft", "127.0.0.1:9005", "--http", "http://127.0.0.1:8085")
    assert await raft3d("join", url, "--learner", *learner) == 0
    assert "stays a learner" in capsys.readouterr().out
    assert node.member_calls[-1][1]["promote"] is False

    assert await raft3d("remove", "n4", "--force", "--url", url) == 0
    out = capsys.readouterr().out
    assert out.startswith("n4 removed\n") and "n4 " not in out.split("\n", 1)[1]
    assert node.member_calls[-1] == ("remove", {"node_id": "n4", "force": True})

    assert await raft3d("transfer", "n2", "--url", url) == 0
    assert capsys.readouterr().out == "leader is now n2\n"
    assert node.member_calls[-1] == ("transfer", {"target": "n2"})


async def test_a_refusal_exits_1_with_the_apis_message(
    url: str, node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    node.fail_member_changes(WouldLoseQuorumError("n2", 1, 2))
    assert await raft3d("remove", "n2", "--url", url) == 1
    err = capsys.readouterr().err
    assert err.startswith("raft3d: 409 would_lose_quorum: removing 'n2' would leave 1")
    assert await raft3d("remove", "n9", "--url", url) == 1
    assert "404 unknown_member" in capsys.readouterr().err
    argv = ("--node-id", "n4", "--raft", "nowhere", "--http", "http://127.0.0.1:8083")
    assert await raft3d("join", url, *argv) == 1
    assert "400 invalid_address" in capsys.readouterr().err


async def test_urls_are_tried_in_turn(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    assert await raft3d("members", "--url", dead, "--url", url) == 0
    assert "n2" in capsys.readouterr().out
    assert await raft3d("transfer", "--url", dead, "--timeout", "2") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"raft3d: no node could answer: {dead}: ")


async def test_a_node_without_a_leader_is_skipped(
    aiohttp_client: AiohttpClient, url: str, node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    lost = FakeNode("n3")
    lost.leader_id = None
    other = await aiohttp_client(make_app(lost, request_timeout_s=0.2))
    lost_url = f"http://{other.host}:{other.port}"
    assert await raft3d("transfer", "--url", lost_url, "--url", url) == 0
    assert capsys.readouterr().out == "leader is now n2\n"
    assert await raft3d("transfer", "--url", lost_url) == 1
    assert "503 no_leader" in capsys.readouterr().err


async def test_token_from_the_flag_or_the_environment(
    aiohttp_client: AiohttpClient,
    node: FakeNode,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await aiohttp_client(make_app(node, auth=auth_settings()))
    url = f"http://{client.host}:{client.port}"
    monkeypatch.delenv("RAFT3D_TOKEN", raising=False)
    assert await raft3d("members", "--url", url) == 1
    assert "401 unauthenticated" in capsys.readouterr().err
    assert await raft3d("remove", "n2", "--url", url, "--token", TOKENS["operator"]) == 1
    assert "403 forbidden" in capsys.readouterr().err
    monkeypatch.setenv("RAFT3D_TOKEN", TOKENS["admin"])
    assert await raft3d("remove", "n2", "--url", url) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["remove"],
        ["join", "http://h:1", "--raft", "h:1", "--http", "http://h:2"],
        ["transfer", "n1", "n2"],
        ["members", "--timeout", "soon"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert "usage: raft3d" in capsys.readouterr().err
