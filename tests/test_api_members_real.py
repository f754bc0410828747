"""The membership endpoints over a real node (a single voter that elects itself): the answers
the node's own checks produce, end to end through the HTTP layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.support.fakes import serve_single_voter
from tests.support.procs import free_ports

Client = TestClient[web.Request, web.Application]


async def error(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


async def test_add_refuse_and_remove_on_a_single_voter(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    node, client = await serve_single_voter(aiohttp_client, tmp_path)
    listed = await (await client.get("/cluster/members")).json()
    assert [(m["node_id"], m["suffrage"]) for m in listed["members"]] == [("solo", "voter")]
    assert listed["change_pending"] is False
    assert await (await client.get("/raft/state")).text() == "Leader"
    status = await (await client.get("/cluster/status")).json()
    assert (status["suffrage"], status["recovering"]) == ("voter", False)
    assert status["cluster_id"]  # written at the cluster's first start

    # A learner that is never started: kept a learner, it counts toward no quorum.
    raft_port, http_port = free_ports(2)
    new = {
        "node_id": "n9",
        "raft_addr": f"127.0.0.1:{raft_port}",
        "http_addr": f"http://127.0.0.1:{http_port}",
        "promote": False,
    }
    response = await client.post("/cluster/members", json=new)
    assert response.status == 201, await response.text()
    added = await response.json()
    assert added["config_index"] > listed["config_index"]
    assert added["cluster_id"] == status["cluster_id"]
    learner = added["members"][1]
    assert (learner["node_id"], learner["suffrage"]) == ("n9", "learner")
    assert (learner["raft_addr"], learner["http_addr"]) == (new["raft_addr"], new["http_addr"])
    assert [m.node_id for m in node.membership().members] == ["solo", "n9"]

    response = await client.post("/cluster/members", json=new)
    assert await error(response) == (409, "member_exists")
    member = (await response.json())["error"]["details"]["member"]
    assert (member["node_id"], member["raft_addr"]) == ("n9", new["raft_addr"])
    response = await client.post("/cluster/members", json={**new, "node_id": "n8"})
    assert await error(response) == (409, "member_exists")  # n9's Raft address

    assert await error(await client.post("/cluster/leader")) == (409, "transfer_refused")
    response = await client.post("/cluster/leader", json={"node_id": "n9"})
    assert await error(response) == (409, "transfer_refused")  # a learner
    response = await client.delete("/cluster/members/solo")
    assert await error(response) == (409, "conf_change_refused")  # the last voter
    response = await client.delete("/cluster/members/n7")
    assert await error(response) == (404, "unknown_member")
    assert [m.node_id for m in node.membership().members] == ["solo", "n9"]

    response = await client.delete("/cluster/members/n9")
    assert response.status == 200, await response.text()
    assert [m["node_id"] for m in (await response.json())["members"]] == ["solo"]
    # Still a working cluster of one.
    printer = {"id": "p1", "company": "Prusa", "model": "MK4"}
    assert (await client.post("/api/v1/printers", json=printer)).status == 201
