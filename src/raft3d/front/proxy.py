"""Relaying a request, as it came, to the node's own HTTP app on its unix socket.

Used for every route a front does not serve itself, and for a write the node handed back.
The node's app answers exactly as it does for a client: its status, headers and body are
passed on unchanged (streamed, so the event stream works too).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp
from aiohttp import hdrs, web
from yarl import URL

from raft3d.api.errors import ServiceUnavailable

RELAYED = web.RequestKey("relayed", bool)

# Hop-by-hop headers (RFC 9110 §7.6.1) and the framing aiohttp redoes on each side.
_HOP = frozenset(
    h.lower()
    for h in (
        hdrs.CONNECTION,
        "Keep-Alive",
        hdrs.PROXY_AUTHENTICATE,
        hdrs.PROXY_AUTHORIZATION,
        hdrs.TE,
        hdrs.TRAILER,
        hdrs.TRANSFER_ENCODING,
        hdrs.UPGRADE,
    )
)
# Headers aiohttp's client adds unless told not to: the node sees only what the client sent.
_NO_AUTO_HEADERS = (hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE)


class Relay:
    """A pooled client for the node's app on ``path``.

    Pooled connections are let go after ``keepalive_s`` idle, before the node's app closes
    them itself: a write relayed on a connection the other end just closed would fail like
    a lost answer."""

    def __init__(self, path: Path, connections: int, keepalive_s: float) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(
                path=str(path), limit=connections, keepalive_timeout=keepalive_s
            ),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
        )

    async def close(self) -> None:
        await self._session.close()

    async def relay(self, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        """Relay ``request``; ``body``: what the front already read of it (else streamed)."""
        request[RELAYED] = True
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        data: bytes | aiohttp.StreamReader | None = body
        if data is None and request.body_exists:
            data = request.content
        url = URL.build(scheme="http", host="node", encoded=True).join(
            URL(request.rel_url.raw_path_qs, encoded=True)
        )
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=None,
            )
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise ServiceUnavailable(
                "node_stopped", f"this node's process does not answer: {exc}"
            ) from None
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP:
                    response.headers.add(name, value)
            if upstream.headers.get(hdrs.CONNECTION, "").lower() == "close":
                response.force_close()
            await response.prepare(request)
            with contextlib.suppress(aiohttp.ClientPayloadError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
        return response
