"""The ``raft3d serve --join`` client: what it retries, what it accepts, when it gives up."""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from raft3d.joining import JoinError, JoinRequest, join_cluster, plan_for
from raft3d.storage.identity import load_or_create_identity
from tests.support.procs import free_ports

ME = JoinRequest("n4", "127.0.0.1:9004", "http://127.0.0.1:8083")
AS_STORED = {"node_id": "n4", "raft_addr": "127.0.0.1:9004", "http_addr": "http://127.0.0.1:8083"}


def refusal(status: int, code: str, **details: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": f"{code}!", "details": details}}


class Cluster:
    """A stand-in member whose answers to POST /cluster/members are scripted."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = deque(answers)
        self.bodies: list[Any] = []
        self.auth: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.auth.append(request.headers.get("Authorization"))
        status, body = self.answers.popleft() if self.answers else (503, {})
        return web.json_response(body, status=status)


async def serve(aiohttp_server: AiohttpServer, cluster: Cluster) -> str:
    app = web.Application()
    app.router.add_post("/cluster/members", cluster.handle)
    server = await aiohttp_server(app)
    return f"http://{server.host}:{server.port}"


async def test_transient_answers_are_retried_until_added(aiohttp_server: AiohttpServer) -> None:
    cluster = Cluster(
        refusal(503, "no_leader"),
        refusal(409, "change_in_progress"),
        refusal(504, "timeout"),
        (201, {"members": [], "cluster_id": "c-42"}),
    )
    url = await serve(aiohttp_server, cluster)
    joined = await join_cluster([url], ME, token="t0k", deadline_s=30)
    assert (joined.url, joined.cluster_id, joined.already) == (url, "c-42", False)
    assert cluster.bodies == [ME.body()] * 4
    assert cluster.auth == ["Bearer t0k"] * 4


async def test_already_a_member_with_the_same_addresses_is_joined(
    aiohttp_server: AiohttpServer,
) -> None:
    stored = {**AS_STORED, "suffrage": "learner"}
    cluster = Cluster(refusal(409, "member_exists", node_id="n4", member=stored))
    joined = await join_cluster([await serve(aiohttp_server, cluster)], ME, deadline_s=30)
    assert joined.already


@pytest.mark.parametrize(
    "answer",
    [
        refusal(409, "member_exists", node_id="n4", member={**AS_STORED, "raft_addr": "h:1"}),
        refusal(409, "member_exists", node_id="n1", member={**AS_STORED, "node_id": "n1"}),
        refusal(409, "member_exists", node_id="n4", member=None),
        refusal(400, "invalid_address", raft_addr=["bad"]),
        refusal(403, "forbidden"),
        refusal(401, "unauthenticated"),
        (404, {}),
    ],
)
async def test_a_lasting_refusal_fails_at_once(
    aiohttp_server: AiohttpServer, answer: tuple[int, dict[str, Any]]
) -> None:
    cluster = Cluster(answer)
    with pytest.raises(JoinError, match="refused to add n4"):
        await join_cluster([await serve(aiohttp_server, cluster)], ME, deadline_s=30)
    assert len(cluster.bodies) == 1


async def test_unreachable_urls_are_skipped_in_turn(aiohttp_server: AiohttpServer) -> None:
    (closed,) = free_ports(1)
    cluster = Cluster((201, {"members": []}))
    url = await serve(aiohttp_server, cluster)
    joined = await join_cluster([f"http://127.0.0.1:{closed}", url], ME, deadline_s=30)
    assert joined.url == url and joined.cluster_id == ""


async def test_gives_up_at_the_deadline_saying_why(
    aiohttp_server: AiohttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = Cluster()  # 503 forever
    url = await serve(aiohttp_server, cluster)
    with caplog.at_level(logging.INFO, "raft3d.join"), pytest.raises(JoinError) as caught:
        await join_cluster([url], ME, deadline_s=0.8)
    assert "not added to the cluster within 0.8 s" in str(caught.value)
    assert "HTTP 503" in str(caught.value)
    assert 2 <= len(cluster.bodies) <= 5  # backoff: 0.2, 0.4, ... not a busy loop
    assert "retrying" in caplog.text


async def test_no_url_is_an_error() -> None:
    with pytest.raises(JoinError, match="no cluster URL"):
        await join_cluster([], ME)


def test_plan_only_for_a_node_not_yet_in_a_cluster(tmp_path: Path) -> None:
    assert plan_for([], tmp_path, None, 5) is None
    plan = plan_for(["http://h:1"], tmp_path, "tok", 5)
    assert plan is not None and plan.urls == ("http://h:1",) and plan.token == "tok"
    member = tmp_path / "member"
    load_or_create_identity(member, "n4", "c-42")
    assert plan_for(["http://h:1"], member, None, 5) is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "identity.json").write_text(json.dumps({"version": 99}))
    assert plan_for(["http://h:1"], broken, None, 5) is None
