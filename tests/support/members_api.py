"""Shared pieces of the membership-endpoint tests (SPEC §6) over a fake node."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from raft3d.node.status import MemberInfo
from tests.support.fakes import FakeNode

Client = TestClient[web.Request, web.Application]

NEW = {"node_id": "n4", "raft_addr": "127.0.0.1:9004", "http_addr": "http://127.0.0.1:8083"}
N2 = MemberInfo("n2", "127.0.0.1:9002", "http://127.0.0.1:8081", "voter", True, 7)


def two_member_node() -> FakeNode:
    node = FakeNode("n1")
    node.members.append(N2)
    return node


async def error(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


def member_ids(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["node_id"], m["suffrage"]) for m in body["members"]]
