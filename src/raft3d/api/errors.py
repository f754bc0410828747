"""The API's own errors: each knows its HTTP status, code and JSON rendering.

Handlers raise these; the error middleware renders them. Node and aiohttp errors are mapped to
them explicitly in ``middleware.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from raft3d.api import headers

# Seconds a client should wait before retrying a 503 (an election takes well under a second).
RETRY_AFTER_S = 1


def error_body(code: str, message: str, details: Mapping[str, object] | None = None) -> object:
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


class ApiError(Exception):
    status: int = 400
    # Set when the request's bytes cannot be trusted to end where they should (a body that
    # failed to decode): the connection is closed after the answer rather than reused.
    close_connection: bool = False

    def __init__(
        self,
        code: str,
        message: str,
        details: Mapping[str, object] | None = None,
        *,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.extra_headers = dict(extra_headers or {})

    def to_response(self) -> web.Response:
        response = web.json_response(
            error_body(self.code, self.message, self.details),
            status=self.status,
            headers=self.extra_headers,
        )
        if self.close_connection:
            response.force_close()
        return response


class BadRequest(ApiError):
    """Malformed input: bad JSON, wrong types, unknown fields, out-of-range values."""

    status = 400


class UndecodableBody(BadRequest):
    """The body cannot be read as sent (``Content-Encoding: gzip`` on bytes that are not gzip)."""

    close_connection = True


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Gone(ApiError):
    status = 410


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class ServerError(ApiError):
    """The node itself failed (e.g. an unreadable file): not the client's doing, but still JSON."""

    status = 500


class ServiceUnavailable(ApiError):
    """Transient: no leader, no quorum, node stopping. Always carries ``Retry-After``."""

    status = 503

    def __init__(
        self,
        code: str,
        message: str,
        details: Mapping[str, object] | None = None,
        *,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = {headers.RETRY_AFTER: str(RETRY_AFTER_S), **(extra_headers or {})}
        super().__init__(code, message, details, extra_headers=merged)


class Unauthorized(ApiError):
    """No valid credentials: a missing or unknown token, or an unsigned forwarding claim."""

    status = 401

    def __init__(self, code: str, message: str, details: Mapping[str, object] | None = None):
        super().__init__(code, message, details, extra_headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """Valid credentials whose role may not do this."""

    status = 403
