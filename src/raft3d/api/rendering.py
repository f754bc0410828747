"""Rendering the state machine's results as HTTP responses."""

from __future__ import annotations

from aiohttp import web

from raft3d.api import headers
from raft3d.api.errors import error_body
from raft3d.domain.results import Accepted, RejectionCode, Result

# Every rejection code the state machine can return, and what it means in HTTP.
REJECTION_STATUS: dict[RejectionCode, int] = {
    RejectionCode.DUPLICATE_ID: 409,
    RejectionCode.INSUFFICIENT_FILAMENT: 409,
    RejectionCode.ILLEGAL_TRANSITION: 409,
    RejectionCode.UNKNOWN_PRINTER: 422,
    RejectionCode.UNKNOWN_FILAMENT: 422,
    RejectionCode.JOB_NOT_FOUND: 404,
    RejectionCode.IDEMPOTENCY_KEY_REUSED: 422,
}


def outcome_json(result: Result | None) -> dict[str, object] | None:
    """A result as plain JSON data, for the event log; None when it is not known."""
    if result is None:
        return None
    if isinstance(result, Accepted):
        return {"result": "accepted", "value": result.value, "replayed": result.replayed}
    return {
        "result": "refused",
        "code": result.code,
        "message": result.message,
        "details": result.details,
        "replayed": result.replayed,
    }


def render_result(result: Result, *, success_status: int) -> web.Response:
    """One response for a result: a replay renders exactly like the original, plus a header."""
    if isinstance(result, Accepted):
        response = web.json_response(result.value, status=success_status)
    else:
        status = REJECTION_STATUS[RejectionCode(result.code)]
        response = web.json_response(
            error_body(result.code, result.message, result.details), status=status
        )
    if result.replayed:
        response.headers[headers.IDEMPOTENT_REPLAYED] = "true"
    return response
