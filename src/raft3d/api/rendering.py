"""Rendering the state machine's results as HTTP responses."""

from __future__ import annotations

from aiohttp import web

from raft3d.api import headers
from raft3d.api.errors import error_body
from raft3d.domain.results import Accepted, Rejected, RejectionCode

# Every rejection code the state machine can return, and what it means in HTTP.
REJECTION_STATUS: dict[str, int] = {
    RejectionCode.DUPLICATE_ID: 409,
    RejectionCode.INSUFFICIENT_FILAMENT: 409,
    RejectionCode.ILLEGAL_TRANSITION: 409,
    RejectionCode.UNKNOWN_PRINTER: 422,
    RejectionCode.UNKNOWN_FILAMENT: 422,
    RejectionCode.JOB_NOT_FOUND: 404,
    RejectionCode.IDEMPOTENCY_KEY_REUSED: 422,
}


class UnexpectedResultError(TypeError):
    """The state machine returned something the API does not know how to render (a bug)."""


def outcome_json(result: object) -> dict[str, object] | None:
    """A result as plain JSON data, for the event log; None when it is not a known result."""
    if isinstance(result, Accepted):
        return {"result": "accepted", "value": result.value, "replayed": result.replayed}
    if isinstance(result, Rejected):
        return {
            "result": "refused",
            "code": result.code,
            "message": result.message,
            "details": result.details,
            "replayed": result.replayed,
        }
    return None


def render_result(result: object, *, success_status: int) -> web.Response:
    """One response for a result: a replay renders exactly like the original, plus a header."""
    if isinstance(result, Accepted):
        response = web.json_response(result.value, status=success_status)
    elif isinstance(result, Rejected):
        status = REJECTION_STATUS.get(result.code)
        if status is None:
            raise UnexpectedResultError(f"unmapped rejection code {result.code!r}")
        response = web.json_response(
            error_body(result.code, result.message, result.details), status=status
        )
    else:
        raise UnexpectedResultError(f"unexpected apply result {result!r}")
    if result.replayed:
        response.headers[headers.IDEMPOTENT_REPLAYED] = "true"
    return response
