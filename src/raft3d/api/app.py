"""The application factory: routes, middlewares, shared state and the forwarding session."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable

import aiohttp
from aiohttp import web
from prometheus_client.registry import Collector

from raft3d.api import auth, cluster, events, farm, members, members_alias, snapshots, stream
from raft3d.api.forwarding import LeaderForwarder
from raft3d.api.metrics import create_metrics
from raft3d.api.middleware import add_answer_headers, serving_middleware
from raft3d.api.objects import get_filament, get_print_job, get_printer
from raft3d.api.openapi import install as install_openapi
from raft3d.api.openapi import openapi_document
from raft3d.api.options import ApiOptions
from raft3d.api.pages import api_docs, dashboard, static_asset
from raft3d.api.ports import NodePort
from raft3d.api.snapshot_render import SnapshotRenderer
from raft3d.api.typedefs import (
    FORWARDER_KEY,
    METRICS_KEY,
    NODE_KEY,
    OPTIONS_KEY,
    RENDERER_KEY,
    STATE_KEY,
)
from raft3d.domain.results import Result
from raft3d.domain.state import FarmStateMachine

API = "/api/v1"
# Connections to the leader at most (more forwarded writes at once wait for one).
FORWARD_CONNECTIONS = 128
CLIENT_SSL_KEY: web.AppKey[ssl.SSLContext | None] = web.AppKey("client_ssl")


def create_app(
    options: ApiOptions,
    node: NodePort[Result],
    state: FarmStateMachine,
    *,
    collectors: Iterable[Collector] = (),
    client_ssl: ssl.SSLContext | None = None,
) -> web.Application:
    """Build the HTTP app for one node.

    The node's lifecycle belongs to the caller (start it in a cleanup context of its own);
    the app only reads ``state`` and talks to ``node``. ``collectors`` are added to the app's
    metrics registry (the node's own metrics); more can be added later with
    ``register_collectors``. ``client_ssl`` verifies the leader's certificate when writes
    are forwarded over HTTPS.
    """
    app = web.Application(
        client_max_size=options.max_body_bytes,
        # Metrics, CORS preflight, errors and authentication, in that order, as one step.
        middlewares=[serving_middleware],
    )
    app.on_response_prepare.append(add_answer_headers)
    install_openapi(app)
    app[OPTIONS_KEY] = options
    app[NODE_KEY] = node
    app[STATE_KEY] = state
    app[METRICS_KEY] = create_metrics(node, collectors)
    app[CLIENT_SSL_KEY] = client_ssl
    app.cleanup_ctx.append(_forwarding_session)
    auth.install(app, middleware=False)  # serving_middleware authorizes
    app.cleanup_ctx.append(_snapshot_renderer)
    stream.setup_event_streams(app)
    _add_routes(app.router)
    return app


def register_collectors(app: web.Application, *collectors: Collector) -> None:
    """Add metric collectors (e.g. the node's counters) to the app's registry."""
    for collector in collectors:
        app[METRICS_KEY].registry.register(collector)


async def _forwarding_session(app: web.Application) -> AsyncIterator[None]:
    # Kept-alive connections to the leader, reused from one forwarded write to the next (a
    # new TCP connection per write cost more than the write). They are let go after
    # ``forward_keepalive_s`` idle, before the leader's own keep-alive timeout: a pooled
    # connection the leader closed would fail like a lost answer (503 outcome_unknown for a
    # write without an Idempotency-Key), so it must not be the leader that closes them.
    client_ssl = app[CLIENT_SSL_KEY]
    connector = aiohttp.TCPConnector(
        ssl=client_ssl or True,
        keepalive_timeout=app[OPTIONS_KEY].forward_keepalive_s,
        limit=FORWARD_CONNECTIONS,
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        app[FORWARDER_KEY] = LeaderForwarder(
            app[OPTIONS_KEY].node_id, session, app[auth.AUTHENTICATOR_KEY].forward_key
        )
        yield


async def _snapshot_renderer(app: web.Application) -> AsyncIterator[None]:
    renderer = app[RENDERER_KEY] = SnapshotRenderer()
    yield
    await renderer.close()


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(f"{API}/printers", farm.create_printer)
    router.add_get(f"{API}/printers", farm.list_printers)
    router.add_post(f"{API}/filaments", farm.create_filament)
    router.add_get(f"{API}/filaments", farm.list_filaments)
    router.add_post(f"{API}/print_jobs", farm.create_print_job)
    router.add_get(f"{API}/print_jobs", farm.list_print_jobs)
    router.add_get(f"{API}/printers/{{id}}", get_printer)
    router.add_get(f"{API}/filaments/{{id}}", get_filament)
    router.add_get(f"{API}/print_jobs/{{id}}", get_print_job)
    router.add_post(f"{API}/print_jobs/{{id}}/status", farm.change_job_status)
    router.add_put(f"{API}/print_jobs/{{id}}/status", farm.change_job_status)
    router.add_get(f"{API}/events", events.list_events)
    router.add_get(f"{API}/events/stream", stream.stream_events)
    router.add_get("/cluster/status", cluster.cluster_status)
    # Membership (SPEC §6): changes run on the leader, like writes; the list is this node's.
    router.add_get("/cluster/members", members.list_members)
    router.add_post("/cluster/members", members.add_member)
    router.add_post("/cluster/members/{id}/promote", members.promote_member)
    router.add_delete("/cluster/members/{id}", members.remove_member)
    router.add_post("/cluster/leader", members.transfer_leadership)
    router.add_get("/raft/state", members_alias.raft_state)
    router.add_post("/join", members_alias.join)
    router.add_delete("/cluster/servers", members_alias.remove_server)
    # Per node: each node lists, reads and takes its own snapshots (never forwarded).
    router.add_get("/cluster/snapshots", snapshots.list_snapshots)
    router.add_post("/cluster/snapshots", snapshots.take_snapshot)
    router.add_get("/cluster/snapshots/latest", snapshots.latest_snapshot)
    router.add_get("/healthz", cluster.healthz)
    router.add_get("/readyz", cluster.readyz)
    router.add_get("/metrics", cluster.metrics)
    # For people: the API document, its readable page, the dashboard and their assets.
    router.add_get("/openapi.json", openapi_document)
    router.add_get("/docs", api_docs)
    router.add_get("/", dashboard)
    router.add_get("/static/{name}", static_asset)
