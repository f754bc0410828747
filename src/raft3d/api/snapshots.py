"""Handlers for this node's own snapshots: list them, read the newest as JSON, take one now.

Snapshots are per node (each node snapshots and compacts its own log), so these endpoints
answer from the node that received the request and are never forwarded:

- ``GET /cluster/snapshots``: ``{"snapshots": [{"index", "term", "size", "created_at"}...]}``,
  newest first; ``created_at`` is ISO-8601 UTC, ``size`` the file's bytes on disk.
- ``GET /cluster/snapshots/latest``: ``{"index", "term", "created_at", "state": {"printers",
  "filaments", "print_jobs"}}``, the farm as the newest snapshot holds it (404 ``no_snapshot``).
- ``POST /cluster/snapshots``: take one now. 201 with the new snapshot's metadata; 200 with the
  newest one and a ``note`` when nothing was applied since it; 409 ``nothing_to_snapshot``
  when nothing was ever applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

from aiohttp import web

from raft3d.api.errors import BadRequest, Conflict, NotFound, ServerError
from raft3d.api.inputs import query_params, read_json_object
from raft3d.api.listing import WRITE_BYTES, write_in_slices
from raft3d.api.ports import SnapshotFileInfo
from raft3d.api.typedefs import NODE_KEY, RENDERER_KEY
from raft3d.domain.errors import SnapshotDecodeError
from raft3d.node.errors import StorageError


def iso_utc(unix_seconds: float) -> str:
    """``2024-05-01T12:00:00.250Z``: millisecond precision, always UTC."""
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def snapshot_json(info: SnapshotFileInfo) -> dict[str, object]:
    return {
        "index": info.index,
        "term": info.term,
        "size": info.size,
        "created_at": iso_utc(info.created_at),
    }


def _find(infos: Sequence[SnapshotFileInfo], index: int) -> SnapshotFileInfo | None:
    return next((info for info in infos if info.index == index), None)


async def list_snapshots(request: web.Request) -> web.StreamResponse:
    query_params(request, ())
    infos = request.app[NODE_KEY].snapshots()
    return web.json_response({"snapshots": [snapshot_json(info) for info in infos]})


async def latest_snapshot(request: web.Request) -> web.StreamResponse:
    query_params(request, ())
    node = request.app[NODE_KEY]
    # Listed first, on the event loop: a snapshot taken meanwhile is newer than the one read,
    # and ``created_at`` is simply left out if the one read is no longer listed.
    listed = list(node.snapshots())
    try:
        snapshot = await asyncio.to_thread(node.latest_snapshot)  # a file read
        if snapshot is None:
            raise NotFound("no_snapshot", f"node {node.node_id} has no snapshot yet")
        meta = snapshot.meta
        head: dict[str, object] = {"index": meta.index, "term": meta.term}
        info = _find(listed, meta.index)
        if info is not None and info.term == meta.term:
            head["created_at"] = iso_utc(info.created_at)
        body = await request.app[RENDERER_KEY].render(snapshot.data, head)
    except (StorageError, SnapshotDecodeError, BrokenProcessPool) as exc:
        raise ServerError(
            "snapshot_unreadable", "the newest snapshot could not be read", {"reason": str(exc)}
        ) from None
    response = web.StreamResponse()
    response.content_type = "application/json"
    response.charset = "utf-8"
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    await write_in_slices(
        response, [view[i : i + WRITE_BYTES] for i in range(0, len(body), WRITE_BYTES)]
    )
    return response


async def take_snapshot(request: web.Request) -> web.StreamResponse:
    query_params(request, ())
    body = await read_json_object(request, required=False)
    if body:
        raise BadRequest(
            "invalid_body",
            "this endpoint takes no parameters",
            {name: ["Unknown field."] for name in body},
        )
    node = request.app[NODE_KEY]
    before = node.status().snapshot_index
    index = await node.take_snapshot()
    if index == 0:
        raise Conflict(
            "nothing_to_snapshot",
            f"node {node.node_id} has applied nothing yet: there is nothing to snapshot",
            {"applied_index": node.applied_index},
        )
    info = _find(node.snapshots(), index)
    if info is None:  # the node just reported it: its file must be listed
        raise ServerError("snapshot_missing", f"snapshot {index} is not among the node's files")
    if index != before:
        return web.json_response(snapshot_json(info), status=201)
    note = f"nothing was applied since the snapshot at index {index}; no new snapshot was taken"
    return web.json_response({**snapshot_json(info), "note": note}, status=200)
