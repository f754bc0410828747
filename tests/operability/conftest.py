"""The fake node and the client every operability test here talks to."""

from __future__ import annotations

import pytest
from pytest_aiohttp import AiohttpClient

from tests.support.fakes import FakeNode
from tests.support.operability import Client, operability_app


@pytest.fixture
def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    return await aiohttp_client(operability_app(node))
