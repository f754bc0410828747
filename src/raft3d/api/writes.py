"""Getting a command committed from any node: propose locally, or forward to the leader.

The loop runs until the request's deadline: a follower forwards to the leader it knows; with
no leader known it polls until one is elected. A request forwarded to us is never forwarded
again: if we are not the leader we say so at once, and the forwarding node looks again.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from raft3d.api import headers
from raft3d.api.auth import identity_of
from raft3d.api.errors import ServiceUnavailable
from raft3d.api.forwarding import MaybeDelivered, Relayed
from raft3d.api.inputs import ascii_decimal
from raft3d.api.ports import NodePort
from raft3d.api.rendering import render_result
from raft3d.api.typedefs import FORWARDER_KEY, NODE_KEY, OPTIONS_KEY
from raft3d.domain.commands import Command, encode_command
from raft3d.domain.results import Result
from raft3d.node.errors import NotLeaderError

# How often a node without a known leader looks again (elections take a few hundred ms).
LEADER_POLL_INTERVAL_S = 0.02


def request_budget(request: web.Request) -> float:
    """Seconds this request may take: the configured timeout, or less if a forwarder says so."""
    budget = request.app[OPTIONS_KEY].request_timeout_s
    if headers.FORWARDED_BY not in request.headers:
        return budget
    # Any client can send these headers: a value no forwarder grants (forwarders grant at
    # least 1 ms, in ASCII digits) is ignored rather than trusted or allowed to raise.
    granted_ms = ascii_decimal(request.headers.get(headers.BUDGET_MS, ""))
    if granted_ms:
        budget = min(budget, granted_ms / 1000)
    return budget


def _leader_url(node: NodePort[Result], request: web.Request, leader_id: str | None) -> str | None:
    if leader_id is None or leader_id == node.node_id:
        return None
    status = node.status()
    if status.leader_id == leader_id and status.leader_http:
        return status.leader_http
    return request.app[OPTIONS_KEY].member_urls.get(leader_id)


async def submit(
    request: web.Request, command: Command, *, success_status: int
) -> web.StreamResponse:
    """Commit ``command`` (on this node or through the leader) and render its result."""
    node = request.app[NODE_KEY]
    loop = asyncio.get_running_loop()
    budget = request_budget(request)
    deadline = loop.time() + budget
    payload = encode_command(command)
    body = await request.read()  # already read and cached by the handler; forwarded as is
    was_forwarded = headers.FORWARDED_BY in request.headers
    has_key = command.idempotency is not None
    last_problem = "no leader is known"
    maybe_applied = False  # a keyed write reached a leader that did not answer

    while (remaining := deadline - loop.time()) > 0:
        try:
            result = await node.propose(payload, remaining)
        except NotLeaderError as exc:
            leader_id = exc.leader_id
        except TimeoutError:
            raise ServiceUnavailable(
                "timeout",
                f"the write was not seen to commit within {budget:g} s; it may still be applied "
                "later (retry with the same Idempotency-Key to find out)",
                {"timeout_s": budget},
            ) from None
        else:
            return render_result(result, success_status=success_status)

        if was_forwarded:
            raise ServiceUnavailable(
                "not_leader",
                f"node {node.node_id} received a forwarded write but is not the leader",
                {"leader_id": leader_id},
                extra_headers={headers.NOT_LEADER: leader_id or ""},
            )
        leader_url = _leader_url(node, request, leader_id)
        if leader_url is None:
            last_problem = (
                "no leader is known"
                if leader_id is None
                else f"the address of leader {leader_id} is not known"
            )
        else:
            outcome = await request.app[FORWARDER_KEY].forward(
                request, body, leader_url, deadline - loop.time(), identity_of(request)
            )
            if isinstance(outcome, Relayed):
                return outcome.response
            if isinstance(outcome, MaybeDelivered) and not has_key:
                raise ServiceUnavailable(
                    "outcome_unknown",
                    "the write was forwarded to the leader, which did not answer: it may or may "
                    "not have been applied (send an Idempotency-Key to retry safely)",
                    {"reason": outcome.reason},
                )
            # Not delivered, or delivered with a key that makes a re-send a safe replay.
            maybe_applied = maybe_applied or isinstance(outcome, MaybeDelivered)
            last_problem = outcome.reason
        await asyncio.sleep(min(LEADER_POLL_INTERVAL_S, max(0.0, deadline - loop.time())))

    if maybe_applied:
        raise ServiceUnavailable(
            "outcome_unknown",
            f"no leader answered within {budget:g} s, but one may have applied the write: "
            f"retry with the same Idempotency-Key to find out ({last_problem})",
        )
    raise ServiceUnavailable(
        "no_leader", f"no leader accepted the write within {budget:g} s: {last_problem}"
    )
