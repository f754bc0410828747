"""What applying a command returns: the same value on every replica.

Business-rule violations are values, not exceptions, so that each replica records the same
outcome for the same log entry and the HTTP layer can map the code to a status.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class RejectionCode(StrEnum):
    DUPLICATE_ID = "duplicate_id"  # 409
    INSUFFICIENT_FILAMENT = "insufficient_filament"  # 409, SPEC rule 2
    ILLEGAL_TRANSITION = "illegal_transition"  # 409, SPEC rule 3
    UNKNOWN_PRINTER = "unknown_printer"  # 422
    UNKNOWN_FILAMENT = "unknown_filament"  # 422
    JOB_NOT_FOUND = "job_not_found"  # 404
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"  # 422: same key, different request


@dataclass(frozen=True, slots=True)
class Accepted:
    """The command took effect; ``value`` is the created or updated object's ``to_dict()``."""

    value: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """The command broke a rule and changed nothing. ``code`` is a ``RejectionCode`` value."""

    code: str
    message: str
    details: dict[str, Any]
    replayed: bool = False


Result = Accepted | Rejected


def rejected(code: RejectionCode, message: str, details: dict[str, Any]) -> Rejected:
    return Rejected(code=code.value, message=message, details=details)


def detached(result: Result, *, replayed: bool = False) -> Result:
    """A copy that shares no mutable dict with ``result`` (stored results must not change)."""
    if isinstance(result, Accepted):
        return replace(result, value=dict(result.value), replayed=replayed)
    return replace(result, details=dict(result.details), replayed=replayed)
