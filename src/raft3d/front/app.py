"""A front's HTTP app: the write routes served here, everything else relayed to the node.

The write handlers are the API's own (``raft3d.api.farm``), with the same middlewares for
errors and authentication; only the node behind ``NODE_KEY`` differs (``RemoteNode``). A
request is relayed as it came when a front cannot answer it exactly as the node would:
any other route, a cross-origin call (CORS needs the node's view of its peers), a request
forwarded by a peer (its replay guard is the node's), or a write the node handed back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from raft3d.api import auth, farm, headers
from raft3d.api.metrics import route_label
from raft3d.api.middleware import add_node_headers, error_middleware
from raft3d.api.options import ApiOptions
from raft3d.api.typedefs import NODE_KEY, OPTIONS_KEY, STATE_KEY
from raft3d.domain.state import FarmStateMachine
from raft3d.front.channel import NodeChannel, RemoteNode
from raft3d.front.protocol import HandBack
from raft3d.front.proxy import Relay

API = "/api/v1"
CHANNEL_KEY = web.AppKey("node_channel", NodeChannel)
RELAY_KEY = web.AppKey("relay", Relay)
_LOCAL_KEY = web.AppKey("local_resources", frozenset[web.AbstractResource])
# Relayed requests in flight at most (more wait for a connection to the node's app).
RELAY_CONNECTIONS = 256


def create_front_app(
    options: ApiOptions, channel: NodeChannel, relay_path: Path
) -> web.Application:
    app = web.Application(
        client_max_size=options.max_body_bytes,
        middlewares=[_gate, _metrics, error_middleware],
    )
    app[OPTIONS_KEY] = options
    app[NODE_KEY] = RemoteNode(options.node_id, channel)
    # Never read: every route that reads the farm is relayed, and the node checks quotas.
    app[STATE_KEY] = FarmStateMachine()
    app[CHANNEL_KEY] = channel
    app.on_response_prepare.append(add_node_headers)
    auth.install(app)
    router = app.router
    local = [
        router.add_post(f"{API}/printers", farm.create_printer),
        router.add_post(f"{API}/filaments", farm.create_filament),
        router.add_post(f"{API}/print_jobs", farm.create_print_job),
        router.add_post(f"{API}/print_jobs/{{id}}/status", farm.change_job_status),
        router.add_put(f"{API}/print_jobs/{{id}}/status", farm.change_job_status),
    ]
    app[_LOCAL_KEY] = frozenset(route.resource for route in local if route.resource is not None)
    router.add_route("*", "/{tail:.*}", _relayed)

    async def relay_session(app: web.Application) -> AsyncIterator[None]:
        keepalive = app[OPTIONS_KEY].forward_keepalive_s
        app[RELAY_KEY] = Relay(relay_path, RELAY_CONNECTIONS, keepalive)
        yield
        await app[RELAY_KEY].close()

    app.cleanup_ctx.append(relay_session)
    return app


def _served_here(request: web.Request) -> bool:
    if request.match_info.route.resource not in request.app[_LOCAL_KEY]:
        return False
    if hdrs.ORIGIN in request.headers:
        return False
    return not any(name in request.headers for name in headers.FORWARDING)


async def _relayed(request: web.Request) -> web.StreamResponse:
    return await request.app[RELAY_KEY].relay(request)


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    relay = request.app[RELAY_KEY]
    if not _served_here(request):
        return await _counted(request, relay.relay(request))
    try:
        return await handler(request)
    except HandBack:
        # Nothing was proposed: the node's app runs the request as if it had come to it.
        return await _counted(request, relay.relay(request, await request.read()))


async def _counted(
    request: web.Request, relaying: Awaitable[web.StreamResponse]
) -> web.StreamResponse:
    started = time.perf_counter()
    status = 503  # the node's app did not answer
    try:
        response = await relaying
        status = response.status
        return response
    finally:
        request.app[CHANNEL_KEY].observe(
            route_label(request),
            request.method,
            status,
            time.perf_counter() - started,
            relayed=True,
        )


@web.middleware
async def _metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count what this front answered; the node counts what it is relayed."""
    started = time.perf_counter()
    status: int | None = 500  # if an unexpected exception escapes, aiohttp answers 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except HandBack:
        status = None
        raise
    finally:
        if status is not None:
            request.app[CHANNEL_KEY].observe(
                route_label(request), request.method, status, time.perf_counter() - started
            )
