"""Read consistency: linearizable by default (ReadIndex barrier), or local on request."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from aiohttp import web

from raft3d.api.cluster import check_not_halted
from raft3d.api.errors import BadRequest, ServiceUnavailable
from raft3d.api.inputs import query_params
from raft3d.api.typedefs import NODE_KEY, OPTIONS_KEY

CONSISTENCY_PARAM = "consistency"
LINEARIZABLE = "linearizable"
LOCAL = "local"


async def consistent_read(
    request: web.Request, extra_params: Collection[str] = ()
) -> Mapping[str, str]:
    """Check the query string and wait until local state may be read; returns the params.

    After a linearizable barrier the local state reflects every write acknowledged before
    the request began, on whichever node.
    """
    params = query_params(request, {CONSISTENCY_PARAM, *extra_params})
    check_not_halted(request)
    level = params.get(CONSISTENCY_PARAM, LINEARIZABLE).lower()
    if level not in (LINEARIZABLE, LOCAL):
        raise BadRequest(
            "invalid_query",
            "the query string is not valid",
            {CONSISTENCY_PARAM: [f"Must be one of: {LINEARIZABLE}, {LOCAL}."]},
        )
    if level == LOCAL and request.app[NODE_KEY].restoring:
        raise ServiceUnavailable(
            "restoring",
            "this node is restoring its state from a snapshot; its local state is stale "
            "until then (a linearizable read waits for it)",
        )
    if level == LINEARIZABLE:
        timeout = request.app[OPTIONS_KEY].request_timeout_s
        try:
            await request.app[NODE_KEY].read_barrier(timeout)
        except TimeoutError:
            raise ServiceUnavailable(
                "timeout",
                f"no quorum confirmed the read within {timeout:g} s "
                f"(?{CONSISTENCY_PARAM}={LOCAL} answers from this node's possibly stale state)",
            ) from None
    return params
