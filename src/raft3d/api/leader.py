"""Running a request on the leader: try it here, or forward it to the leader and relay.

Writes and membership changes both need the leader. A write's attempt is the node's
``propose``, which on a follower already forwards the command over the peer link (see
``NodePort.propose``); it raises ``NotLeaderError`` only when that was not possible (no
leader known, or no peer link up to it). Membership changes raise it on every follower.
Either way this loop then forwards the HTTP request to the leader it knows (for a write,
the fallback while the peer link is down), or with no leader known polls until one is
elected, until the request's deadline. A request forwarded to us is never forwarded again:
if we are not the leader we say so at once, and the forwarding node looks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from raft3d.api import headers
from raft3d.api.auth import identity_of
from raft3d.api.errors import ServiceUnavailable
from raft3d.api.forwarding import MaybeDelivered, Relayed
from raft3d.api.inputs import ascii_decimal
from raft3d.api.ports import NodePort
from raft3d.api.typedefs import FORWARDER_KEY, NODE_KEY, OPTIONS_KEY
from raft3d.domain.results import Result
from raft3d.node.errors import LeadershipTransferError, NotLeaderError

# How often a node without a known leader looks again (elections take a few hundred ms).
LEADER_POLL_INTERVAL_S = 0.02

# One try on this node with the seconds left; raises ``NotLeaderError`` to be forwarded
# over HTTP.
Attempt = Callable[[float], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Wording:
    """How the loop's own errors name what was asked."""

    what: str  # "write", "membership change"
    # How a client finds out whether a request whose answer was lost took effect.
    find_out: str
    # Whether re-sending after a lost answer is safe (a keyed write replays its answer).
    resend_safe: bool = False


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


def leader_url(node: NodePort[Result], request: web.Request, leader_id: str | None) -> str | None:
    """The HTTP base URL of ``leader_id``: from the node's status, its configuration, or the
    members this node was configured with."""
    if leader_id is None or leader_id == node.node_id:
        return None
    status = node.status()
    if status.leader_id == leader_id and status.leader_http:
        return status.leader_http
    for member in node.membership().members:
        if member.node_id == leader_id and member.http_addr:
            return member.http_addr
    return request.app[OPTIONS_KEY].member_urls.get(leader_id)


def check_still_member(node: NodePort[Result], what: str) -> None:
    """503 ``node_removed`` from a node the cluster removed: it takes no part any more (its
    peers would refuse what it forwards), so the client must go to a member."""
    if node.suffrage != "removed":
        return
    members = [m.http_addr for m in node.membership().members if m.http_addr]
    raise ServiceUnavailable(
        "node_removed",
        f"node {node.node_id} was removed from the cluster: send the {what} to a member",
        {"members": members},
    )


async def on_leader(request: web.Request, attempt: Attempt, wording: Wording) -> web.StreamResponse:
    """``attempt`` on this node if it leads, else on the leader through forwarding."""
    node = request.app[NODE_KEY]
    check_still_member(node, wording.what)
    loop = asyncio.get_running_loop()
    budget = request_budget(request)
    deadline = loop.time() + budget
    was_forwarded = headers.FORWARDED_BY in request.headers
    what = wording.what
    last_problem = "no leader is known"
    maybe_applied = False  # a request that is safe to re-send reached a leader that did not answer

    while (remaining := deadline - loop.time()) > 0:
        try:
            return await attempt(remaining)
        except NotLeaderError as exc:
            leader_id = exc.leader_id
        except LeadershipTransferError:
            # This node leads but is handing over: look again once the new leader is known
            # (a 500 before, found by a rolling restart under writes).
            leader_id = None

        if was_forwarded:
            raise ServiceUnavailable(
                "not_leader",
                f"node {node.node_id} received a forwarded {what} but is not the leader",
                {"leader_id": leader_id},
                extra_headers={headers.NOT_LEADER: leader_id or ""},
            )
        url = leader_url(node, request, leader_id)
        if url is None:
            last_problem = (
                "no leader is known"
                if leader_id is None
                else f"the address of leader {leader_id} is not known"
            )
        else:
            body = await request.read()  # read and cached by the handler; forwarded as is
            outcome = await request.app[FORWARDER_KEY].forward(
                request, body, url, deadline - loop.time(), identity_of(request)
            )
            if isinstance(outcome, Relayed):
                return outcome.response
            if isinstance(outcome, MaybeDelivered) and not wording.resend_safe:
                raise ServiceUnavailable(
                    "outcome_unknown",
                    f"the {what} was forwarded to the leader, which did not answer: it may or "
                    f"may not have been applied ({wording.find_out})",
                    {"reason": outcome.reason},
                )
            # Not delivered, or delivered with a key that makes a re-send a safe replay.
            maybe_applied = maybe_applied or isinstance(outcome, MaybeDelivered)
            last_problem = outcome.reason
        await asyncio.sleep(min(LEADER_POLL_INTERVAL_S, max(0.0, deadline - loop.time())))

    if maybe_applied:
        raise ServiceUnavailable(
            "outcome_unknown",
            f"no leader answered within {budget:g} s, but one may have applied the {what}: "
            f"{wording.find_out} ({last_problem})",
        )
    raise ServiceUnavailable(
        "no_leader", f"no leader accepted the {what} within {budget:g} s: {last_problem}"
    )
