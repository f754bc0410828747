"""Handlers for cluster membership (SPEC §6): list, add, promote, remove, hand leadership over.

Changes go through the leader's log, so they are run on the leader like writes
(``leader.on_leader``): a follower forwards them. Each answers once the change is committed,
with the configuration that results. Inputs are checked before the node is asked anything;
the node's refusals are mapped to 409s with a code a script can act on:

- ``member_exists``: the id, or the Raft address, is already a member's;
- ``change_in_progress``: another change is not committed yet (or the leader has not yet
  committed an entry of its term): retry shortly;
- ``unknown_member`` (404); ``would_lose_quorum`` (unless ``?force=true``);
  ``transfer_refused``; ``not_caught_up`` (a hand promotion of a learner that trails,
  unless ``?force=true``); ``conf_change_refused`` (e.g. removing the last voter);
- ``timeout`` (504): not seen to commit in time; it may still take effect.

The seed-compatible aliases (``POST /join``, ``DELETE /cluster/servers``) and
``GET /raft/state`` are in ``members_alias.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from raft3d.api.errors import ApiError, Conflict, NotFound, ServiceUnavailable
from raft3d.api.inputs import query_params, read_json_object
from raft3d.api.leader import Wording, on_leader, request_budget
from raft3d.api.member_inputs import (
    AddMemberSchema,
    NoBodySchema,
    TransferSchema,
    bool_param,
    checked_addresses,
    load_body,
    may_name_member,
)
from raft3d.api.typedefs import NODE_KEY
from raft3d.node.errors import (
    ConfChangeError,
    ConfChangeInProgressError,
    LeadershipTransferError,
    LearnerNotCaughtUpError,
    MemberExistsError,
    NoCommitInTermError,
    TransferRefusedError,
    UnknownMemberError,
    WouldLoseQuorumError,
)
from raft3d.node.status import Membership

FORCE_PARAM = "force"

_WORDING = Wording("membership change", "read GET /cluster/members to find out")
_TRANSFER_WORDING = Wording("leadership transfer", "read GET /cluster/status to find out")

_add_schema = AddMemberSchema()
_transfer_schema = TransferSchema()
_no_body_schema = NoBodySchema()


class GatewayTimeout(ServiceUnavailable):
    """The change was not seen to commit within the request's time; it may still."""

    status = 504


def membership_json(membership: Membership) -> dict[str, Any]:
    return {
        "config_index": membership.config_index,
        "change_pending": membership.change_pending,
        "members": [dataclasses.asdict(member) for member in membership.members],
    }


def _member_of(request: web.Request, node_id: str) -> dict[str, Any] | None:
    for member in request.app[NODE_KEY].membership().members:
        if member.node_id == node_id:
            return dataclasses.asdict(member)
    return None


def refusal(
    request: web.Request, exc: Exception, budget: float, wording: Wording = _WORDING
) -> ApiError | None:
    """The API error for a node's refusal of a membership change; None if ``exc`` is not
    one (``NotLeaderError`` among them: it is forwarded)."""
    if isinstance(exc, TimeoutError):
        return GatewayTimeout(
            "timeout",
            f"the {wording.what} was not seen to complete within {budget:g} s; it may still "
            f"take effect ({wording.find_out})",
            {"timeout_s": budget},
        )
    if isinstance(exc, LeadershipTransferError):
        return ServiceUnavailable("transfer_in_progress", str(exc), {"target": exc.target})
    if not isinstance(exc, ConfChangeError):
        return None
    message = str(exc)
    if isinstance(exc, MemberExistsError):
        node_id = exc.node_id
        return Conflict(
            "member_exists", message, {"node_id": node_id, "member": _member_of(request, node_id)}
        )
    if isinstance(exc, ConfChangeInProgressError | NoCommitInTermError):
        return Conflict("change_in_progress", message, {"retry": True})
    if isinstance(exc, UnknownMemberError):
        return NotFound("unknown_member", message, {"node_id": exc.node_id})
    if isinstance(exc, WouldLoseQuorumError):
        return Conflict(
            "would_lose_quorum",
            message,
            {"reachable": exc.reachable, "quorum": exc.quorum, "force": "?force=true"},
        )
    if isinstance(exc, TransferRefusedError):
        return Conflict("transfer_refused", message)
    if isinstance(exc, LearnerNotCaughtUpError):
        return Conflict(
            "not_caught_up",
            message,
            {"match_index": exc.match_index, "last_index": exc.last_index, "force": "?force=true"},
        )
    return Conflict("conf_change_refused", message)


async def _run_change(
    request: web.Request,
    change: Callable[[float], Awaitable[web.StreamResponse]],
    wording: Wording = _WORDING,
) -> web.StreamResponse:
    budget = request_budget(request)

    async def attempt(remaining: float) -> web.StreamResponse:
        try:
            return await change(remaining)
        except (TimeoutError, LeadershipTransferError, ConfChangeError) as exc:
            mapped = refusal(request, exc, budget, wording)
            if mapped is None:  # pragma: no cover - refusal maps every one of these
                raise
            raise mapped from None

    return await on_leader(request, attempt, wording)


def _answer(request: web.Request, membership: Membership, status: int) -> web.Response:
    body = membership_json(membership)
    cluster_id = request.app[NODE_KEY].status().cluster_id
    if cluster_id:
        body["cluster_id"] = cluster_id
    return web.json_response(body, status=status)


def member_id_from_path(request: web.Request) -> str:
    """The ``{id}`` of the path; a 404 at once when no member can have it."""
    node_id = request.match_info["id"]
    if not may_name_member(node_id):
        shown = node_id[:64].encode("utf-8", "replace").decode("utf-8")
        raise NotFound("unknown_member", f"no member has id {shown!r}", {"node_id": shown})
    return node_id


async def _no_body(request: web.Request) -> None:
    body = await read_json_object(request, required=False)
    if body is not None:
        load_body(_no_body_schema, body)


# -- handlers --------------------------------------------------------------------------


async def list_members(request: web.Request) -> web.StreamResponse:
    """This node's view of the configuration (any node; never forwarded)."""
    query_params(request, ())
    return web.json_response(membership_json(request.app[NODE_KEY].membership()))


async def add_member(request: web.Request) -> web.StreamResponse:
    query_params(request, ())
    body = await read_json_object(request, required=True)
    assert body is not None  # required=True
    fields = load_body(_add_schema, body)
    raft, http = checked_addresses(
        fields["raft_addr"], fields["http_addr"], names=("raft_addr", "http_addr")
    )
    return await add(request, fields["node_id"], raft, http, fields.get("promote", True), 201)


async def add(
    request: web.Request, node_id: str, raft: str, http: str, promote: bool, status: int
) -> web.StreamResponse:
    """Add a checked member through the leader; answer ``status`` once committed."""
    node = request.app[NODE_KEY]

    async def change(remaining: float) -> web.StreamResponse:
        membership = await node.add_member(node_id, raft, http, promote=promote, timeout=remaining)
        return _answer(request, membership, status)

    return await _run_change(request, change)


async def promote_member(request: web.Request) -> web.StreamResponse:
    params = query_params(request, (FORCE_PARAM,))
    force = bool_param(params, FORCE_PARAM)
    await _no_body(request)
    node_id = member_id_from_path(request)
    node = request.app[NODE_KEY]

    async def change(remaining: float) -> web.StreamResponse:
        promoted = await node.promote_member(node_id, force=force, timeout=remaining)
        return _answer(request, promoted, 200)

    return await _run_change(request, change)


async def remove_member(request: web.Request) -> web.StreamResponse:
    params = query_params(request, (FORCE_PARAM,))
    force = bool_param(params, FORCE_PARAM)
    await _no_body(request)
    return await remove(request, member_id_from_path(request), force)


async def remove(request: web.Request, node_id: str, force: bool) -> web.StreamResponse:
    node = request.app[NODE_KEY]

    async def change(remaining: float) -> web.StreamResponse:
        membership = await node.remove_member(node_id, force=force, timeout=remaining)
        return _answer(request, membership, 200)

    return await _run_change(request, change)


async def transfer_leadership(request: web.Request) -> web.StreamResponse:
    query_params(request, ())
    body: Mapping[str, object] | None = await read_json_object(request, required=False)
    target: str | None = load_body(_transfer_schema, body or {}).get("node_id")
    node = request.app[NODE_KEY]

    async def change(remaining: float) -> web.StreamResponse:
        leader_id = await node.transfer_leadership(target, timeout=remaining)
        return web.json_response({"leader_id": leader_id})

    return await _run_change(request, change, _TRANSFER_WORDING)
