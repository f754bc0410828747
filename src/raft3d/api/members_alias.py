"""Seed-compatible spellings of the membership endpoints (SPEC §6), for tools written against
hashicorp/raft-based systems:

- ``GET /raft/state``: ``Leader``, ``Follower``, ``Candidate`` or ``Learner``, as text;
- ``POST /join?node_id=ID&addr=RAFT&http=HTTP``: ``POST /cluster/members`` (200 once
  committed; ``promote=false`` keeps the node a learner);
- ``DELETE /cluster/servers?id=ID``: ``DELETE /cluster/members/{id}`` (``force=true`` too).

They check their inputs and answer errors exactly like the endpoints they stand for.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from raft3d.api.errors import BadRequest
from raft3d.api.inputs import query_params
from raft3d.api.member_inputs import bool_param, checked_addresses, is_node_id, may_name_member
from raft3d.api.members import FORCE_PARAM, add, remove
from raft3d.api.typedefs import NODE_KEY

_STATES = {"leader": "Leader", "candidate": "Candidate"}


def raft_state_text(role: str, suffrage: str) -> str:
    if suffrage == "learner":
        return "Learner"
    return _STATES.get(role, "Follower")


async def raft_state(request: web.Request) -> web.StreamResponse:
    query_params(request, ())
    status = request.app[NODE_KEY].status()
    return web.Response(text=raft_state_text(status.role, status.suffrage))


def _required(params: Mapping[str, str], *names: str) -> None:
    missing = {name: ["Missing data for required field."] for name in names if name not in params}
    if missing:
        raise BadRequest("invalid_query", "the query string is not valid", missing)


def _node_id(params: Mapping[str, str], name: str, *, new: bool) -> str:
    node_id = params[name]
    if not (is_node_id(node_id) if new else may_name_member(node_id)):
        problem = (
            "Not a valid node id: 1 to 64 letters, digits, '.', '_' or '-'."
            if new
            else "Not a valid node id."
        )
        raise BadRequest("invalid_query", "the query string is not valid", {name: [problem]})
    return node_id


async def _no_body(request: web.Request) -> None:
    if (await request.read()).strip():
        raise BadRequest("invalid_body", "this endpoint takes its parameters in the query string")


async def join(request: web.Request) -> web.StreamResponse:
    params = query_params(request, ("node_id", "addr", "http", "promote"))
    _required(params, "node_id", "addr", "http")
    node_id = _node_id(params, "node_id", new=True)
    promote = bool_param(params, "promote") if "promote" in params else True
    await _no_body(request)
    raft, http = checked_addresses(params["addr"], params["http"], names=("addr", "http"))
    return await add(request, node_id, raft, http, promote, 200)


async def remove_server(request: web.Request) -> web.StreamResponse:
    params = query_params(request, ("id", FORCE_PARAM))
    _required(params, "id")
    node_id = _node_id(params, "id", new=False)
    force = bool_param(params, FORCE_PARAM)
    await _no_body(request)
    return await remove(request, node_id, force)
