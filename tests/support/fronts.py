"""A front in front of a fake node, in one process: the node's app on a unix socket (as the
node serves it for its fronts), the front socket server, and the front's own app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from raft3d.api.typedefs import METRICS_KEY, OPTIONS_KEY
from raft3d.front.app import create_front_app
from raft3d.front.channel import NodeChannel
from raft3d.front.server import FrontServer
from tests.support.fakes import FakeNode, make_app


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass
class Endpoint:
    """Sends requests either straight to the node's app or through the front."""

    session: aiohttp.ClientSession
    base: str

    async def send(self, method: str, path: str, **kwargs: Any) -> Answer:
        async with self.session.request(method, self.base + path, **kwargs) as response:
            raw = await response.read()
            try:
                body: Any = await response.json(content_type=None)
            except ValueError:
                body = raw
            return Answer(response.status, body, response.headers)


@asynccontextmanager
async def node_with_front(
    node: FakeNode, root: Path, **settings: Any
) -> AsyncIterator[tuple[Endpoint, Endpoint, web.Application]]:
    """``(direct, through the front, node app)`` for ``node``; ``settings`` as ``make_app``'s.

    ``root`` must exist (its sockets go there)."""
    app = make_app(node, **settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(root / "http.sock")).start()
    server = FrontServer(node, node.state, app[OPTIONS_KEY], app[METRICS_KEY])
    await server.start(root / "front.sock")
    channel = await NodeChannel.connect(root / "front.sock", 0, timeout=5)
    front = TestClient(TestServer(create_front_app(app[OPTIONS_KEY], channel, root / "http.sock")))
    await front.start_server()
    direct = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(root / "http.sock")))
    through = aiohttp.ClientSession()
    try:
        yield (
            Endpoint(direct, "http://node"),
            Endpoint(through, f"http://{front.host}:{front.port}"),
            app,
        )
    finally:
        await direct.close()
        await through.close()
        await front.close()
        await channel.close()
        await server.close()
        await runner.cleanup()
