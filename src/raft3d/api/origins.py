"""Cross-origin access between the cluster's own nodes, for the dashboard's fail-over.

The dashboard loaded from one node talks to the others when that node dies, and a page's
origin is the node it came from. A browser lets it read another node's answers (and send a
JSON write) only when that node names the page's origin as allowed. Allowed origins are the
cluster's members' HTTP addresses, nothing else: a page from anywhere else gets no CORS
headers, and its browser refuses to give it the answer.

Loopback names are treated as one host (``localhost:8080`` is ``127.0.0.1:8080``), so the
local demo works whichever name the browser was given.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web

from raft3d.api import headers
from raft3d.api.typedefs import NODE_KEY, OPTIONS_KEY

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_ALLOWED_METHODS = "GET, POST, PUT, DELETE"
_ALLOWED_HEADERS = f"Content-Type, Authorization, {headers.IDEMPOTENCY_KEY}, Last-Event-ID"
_EXPOSED_HEADERS = ", ".join(
    (headers.NODE, headers.APPLIED_INDEX, headers.RETRY_AFTER, headers.IDEMPOTENT_REPLAYED, "Link")
)
_PREFLIGHT_MAX_AGE_S = 600


def _origin_key(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK_NAMES or host.startswith("127."):
        host = "loopback"
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, host, port


def _member_origins(request: web.Request) -> set[tuple[str, str, int | None]]:
    own = request.app[OPTIONS_KEY].own_url
    urls = [own, *(peer.http_addr for peer in request.app[NODE_KEY].status().peers)]
    return {key for key in map(_origin_key, urls) if key is not None}


def allowed_origin(request: web.Request) -> str | None:
    """The request's ``Origin`` if it is one of the cluster's members, else None."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return None
    key = _origin_key(origin)
    return origin if key is not None and key in _member_origins(request) else None


def is_preflight(request: web.Request) -> bool:
    """A browser's CORS preflight: ``OPTIONS`` with ``Access-Control-Request-Method``."""
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def preflight_response(request: web.Request) -> web.Response:
    """The answer to a preflight: the methods and headers allowed, to a member's origin."""
    response = web.Response(status=204)
    if allowed_origin(request) is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = _ALLOWED_METHODS
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = _ALLOWED_HEADERS
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(_PREFLIGHT_MAX_AGE_S)
    return response


def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Name a member origin as allowed, on every answer to it."""
    if hdrs.ORIGIN not in request.headers:
        return  # not a cross-origin call (curl, a same-origin page load): nothing to say
    response.headers.add(hdrs.VARY, hdrs.ORIGIN)
    origin = allowed_origin(request)
    if origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = _EXPOSED_HEADERS
