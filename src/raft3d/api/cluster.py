"""Handlers for the operational endpoints: cluster status, health, readiness, metrics."""

from __future__ import annotations

import dataclasses
import os

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from raft3d.api.errors import ServiceUnavailable
from raft3d.api.typedefs import METRICS_KEY, NODE_KEY


async def cluster_status(request: web.Request) -> web.Response:
    # The pid lets an operator (or the README's demo) signal the right process.
    body = {**dataclasses.asdict(request.app[NODE_KEY].status()), "pid": os.getpid()}
    return web.json_response(body)


def check_not_halted(request: web.Request) -> None:
    """503 ``halted`` from a node that stopped on a disk error or a corrupt entry.

    Such a node exits so that its supervisor restarts it; until then it must not look healthy
    nor answer from its (stale) local state.
    """
    reason = request.app[NODE_KEY].halted_reason
    if reason is not None:
        raise ServiceUnavailable(
            "halted", "this node halted and is exiting to be restarted", {"reason": reason}
        )


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving HTTP (and not halted); says nothing about the cluster."""
    check_not_halted(request)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: a leader is known and everything known committed has been applied."""
    check_not_halted(request)
    status = request.app[NODE_KEY].status()
    facts = {
        "leader_id": status.leader_id,
        "commit_index": status.commit_index,
        "applied_index": status.applied_index,
    }
    if status.leader_id is None:
        raise ServiceUnavailable("not_ready", "no leader is known", facts)
    if request.app[NODE_KEY].restoring:
        raise ServiceUnavailable("not_ready", "restoring its state from a snapshot", facts)
    if status.applied_index < status.commit_index:
        raise ServiceUnavailable(
            "not_ready",
            f"applied index {status.applied_index} is behind commit index {status.commit_index}",
            facts,
        )
    return web.json_response({"status": "ready", **facts})


async def metrics(request: web.Request) -> web.Response:
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": content_type})
