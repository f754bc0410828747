"""Forwarding a write that reached a follower to the leader, and relaying the leader's answer.

What matters is knowing whether the leader may have seen the request: if the connection was
never made, trying again elsewhere is safe; if the request may have arrived and only the
answer was lost, re-sending a write without an idempotency key could apply it twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

from raft3d.api import headers
from raft3d.security.forwarding_mac import ForwardClaims, sign
from raft3d.security.tokens import Identity

log = logging.getLogger(__name__)

# Extra time the forwarding node waits beyond the budget it grants the leader, so that the
# leader's own answer (e.g. its 503) arrives before we give up on it.
ANSWER_GRACE_S = 0.5

_REQUEST_HEADERS = (hdrs.CONTENT_TYPE, hdrs.ACCEPT, headers.IDEMPOTENCY_KEY)
_RELAYED_HEADERS = frozenset(
    h.lower()
    for h in (hdrs.CONTENT_TYPE, hdrs.ALLOW, headers.RETRY_AFTER, headers.IDEMPOTENT_REPLAYED)
)


@dataclass(frozen=True, slots=True)
class Relayed:
    """The leader answered; this is its answer, to return unchanged."""

    response: web.Response


@dataclass(frozen=True, slots=True)
class NotDelivered:
    """The leader certainly did not act on the request (no connection, or it was not leader)."""

    reason: str


@dataclass(frozen=True, slots=True)
class MaybeDelivered:
    """The request may have reached the leader, but no answer came back."""

    reason: str


ForwardResult = Relayed | NotDelivered | MaybeDelivered


class LeaderForwarder:
    def __init__(self, node_id: str, session: aiohttp.ClientSession, key: bytes) -> None:
        """``key``: signs the forwarding claims (``forwarding_mac.forwarding_key``)."""
        self._node_id = node_id
        self._session = session
        self._key = key

    async def forward(
        self,
        request: web.Request,
        body: bytes,
        leader_url: str,
        budget_s: float,
        caller: Identity,
    ) -> ForwardResult:
        """Send ``request`` (with its raw ``body``) to the leader at ``leader_url``, on behalf
        of ``caller`` (whom this node authenticated)."""
        try:
            # The path and query only: ``raw_path`` is the request target as sent, which in
            # absolute form (``POST http://host/api/v1/...``) names a scheme and host too.
            url = URL(leader_url.rstrip("/") + request.rel_url.raw_path_qs, encoded=True)
        except ValueError as exc:
            return NotDelivered(f"bad leader URL {leader_url!r}: {exc}")
        claims = ForwardClaims(
            forwarded_by=self._node_id,
            budget_ms=max(1, int(budget_s * 1000)),
            caller=caller.name,
            role=caller.role,
            timestamp_ms=int(time.time() * 1000),
        )
        out: dict[str, str] = {
            headers.FORWARDED_BY: claims.forwarded_by,
            headers.BUDGET_MS: str(claims.budget_ms),
            headers.CALLER: claims.caller,
            headers.CALLER_ROLE: claims.role,
            headers.FORWARD_TIME: str(claims.timestamp_ms),
        }
        for name in _REQUEST_HEADERS:
            if name in request.headers:
                out[name] = request.headers[name]
        out[headers.FORWARD_MAC] = sign(
            self._key, request.method, request.rel_url.raw_path_qs, claims, out, body
        )
        try:
            async with self._session.request(
                request.method,
                url,
                data=body,
                headers=out,
                # The leader must see the client's Content-Type or none, not a default.
                skip_auto_headers=() if hdrs.CONTENT_TYPE in out else (hdrs.CONTENT_TYPE,),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=budget_s + ANSWER_GRACE_S),
            ) as answer:
                payload = await answer.read()
                if answer.status == 503 and headers.NOT_LEADER in answer.headers:
                    return NotDelivered(f"{leader_url} is no longer the leader")
                return Relayed(_relay(answer, payload))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            log.info("forwarding to %s failed before sending: %s", leader_url, exc)
            return NotDelivered(f"could not connect to the leader at {leader_url}: {exc}")
        except aiohttp.InvalidURL as exc:
            return NotDelivered(f"bad leader URL {leader_url!r}: {exc}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("forwarded request to %s got no answer: %r", leader_url, exc)
            return MaybeDelivered(f"the leader at {leader_url} did not answer: {exc!r}")


def _relay(answer: aiohttp.ClientResponse, payload: bytes) -> web.Response:
    relayed: CIMultiDict[str] = CIMultiDict()
    for name, value in answer.headers.items():
        lower = name.lower()
        if lower.startswith(headers.RAFT3D_PREFIX) or lower in _RELAYED_HEADERS:
            relayed.add(name, value)
    return web.Response(status=answer.status, body=payload, headers=relayed)
