"""Error rendering, node headers and request metrics, applied to every response.

Known errors are mapped explicitly; anything else is a bug and is left to aiohttp (logged,
500). Client input never gets that far: handlers refuse it with a 4xx ``ApiError``.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from raft3d.api import headers
from raft3d.api.auth import authorize
from raft3d.api.errors import (
    ApiError,
    PayloadTooLarge,
    ServiceUnavailable,
    error_body,
)
from raft3d.api.metrics import route_label
from raft3d.api.origins import cors_headers, is_preflight, preflight_response
from raft3d.api.typedefs import GUARD_KEY, METRICS_KEY, NODE_KEY
from raft3d.node.errors import (
    EntryTooLargeError,
    ForwardLostError,
    NodeStoppedError,
    NoLeaderError,
    OutcomeUnknownError,
)

_HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}
# Headers of aiohttp's own error responses that describe its plain-text body, not ours.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _HTTP_ERROR_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
    message = exc.reason
    details: dict[str, object] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        message = f"method {exc.method} is not allowed here"
        details["allowed_methods"] = sorted(exc.allowed_methods)
    elif isinstance(exc, web.HTTPRequestEntityTooLarge) and exc.text:
        message = exc.text  # states the limit
    response = web.json_response(error_body(code, message, details), status=exc.status)
    for name, value in exc.headers.items():
        if name.lower() not in _BODY_HEADERS:
            response.headers.add(name, value)
    return response


def _from_node_error(exc: Exception) -> ApiError:
    if isinstance(exc, ForwardLostError):
        return ServiceUnavailable(
            "outcome_unknown",
            f"{exc}: the write may or may not have been applied (send an Idempotency-Key to "
            "retry safely)",
        )
    if isinstance(exc, OutcomeUnknownError):
        return ServiceUnavailable(
            "outcome_unknown",
            "leadership changed before the write was seen to commit: it may or may not have "
            "been applied (send an Idempotency-Key to retry safely)",
            {"index": exc.index, "term": exc.term},
        )
    if isinstance(exc, EntryTooLargeError):
        return PayloadTooLarge("entry_too_large", str(exc), {"size": exc.size, "limit": exc.limit})
    if isinstance(exc, NoLeaderError):
        return ServiceUnavailable("no_leader", str(exc) or "no leader is known")
    return ServiceUnavailable("node_stopped", str(exc) or "this node is stopping")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.to_response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except (OutcomeUnknownError, EntryTooLargeError, NoLeaderError, NodeStoppedError) as exc:
        return _from_node_error(exc).to_response()


@web.middleware
async def serving_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The node app's one middleware: request metrics, the answer to a CORS preflight,
    errors rendered as ``error_middleware`` does, and ``auth.authorize``, in that order.

    Each middleware is a coroutine and a call of its own on every request; at the leader's
    write rate those four cost more than the route's own check of its body. So the
    connection guard's head clock (``ConnectionGuard.track_requests``) is stopped here too,
    first, when the app has a ``GUARD_KEY``.
    """
    started = time.perf_counter()
    app = request.app
    guard = app.get(GUARD_KEY)
    conn = None if guard is None else guard.request_started(request)
    status = 500  # if an unexpected exception escapes, aiohttp answers 500
    try:
        if is_preflight(request):
            response: web.StreamResponse = preflight_response(request)
        else:
            try:
                await authorize(request)
                response = await handler(request)
            except ApiError as exc:
                response = exc.to_response()
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = _from_http_exception(exc)
            except (
                OutcomeUnknownError,
                EntryTooLargeError,
                NoLeaderError,
                NodeStoppedError,
            ) as exc:
                response = _from_node_error(exc).to_response()
        status = response.status
        return response
    finally:
        app[METRICS_KEY].observe(
            route_label(request), request.method, status, time.perf_counter() - started
        )
        if conn is not None:
            conn.request_finished()


async def add_node_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: ``node_headers``."""
    node_headers(request, response)


async def add_answer_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The node app's on_response_prepare: ``cors_headers``, then ``node_headers``, in one
    receiver (each receiver is a coroutine call on every response)."""
    cors_headers(request, response)
    node_headers(request, response)


def node_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Say which node answered and how far it has applied.

    ``setdefault`` keeps the values a handler set itself: a read states the index it read at,
    a forwarded write relays the leader's headers.
    """
    node = request.app[NODE_KEY]
    response.headers.setdefault(headers.NODE, node.node_id)
    response.headers.setdefault(headers.APPLIED_INDEX, str(node.applied_index))
