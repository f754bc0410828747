"""Object quotas (``[limits]``): a create that would exceed one is refused before proposing.

The check runs against this node's applied state on every node the request passes through,
the leader included (a forwarded write runs the same handler there). It bounds memory, not a
business rule: concurrent creates already in the log when the count was read can overshoot a
quota by at most the writes in flight, and every replica still applies the same entries.
"""

from __future__ import annotations

from aiohttp import web

from raft3d.api.errors import ApiError
from raft3d.api.options import ApiOptions
from raft3d.api.typedefs import OPTIONS_KEY, STATE_KEY
from raft3d.domain.state import FarmStateMachine


class QuotaExceeded(ApiError):
    status = 409


def check_quota(request: web.Request, kind: str) -> None:
    """Refuse (409 ``quota_exceeded``) one more object of ``kind``: printers, filaments or
    print_jobs."""
    check_count(request.app[OPTIONS_KEY], request.app[STATE_KEY], kind)


def check_count(options: ApiOptions, state: FarmStateMachine, kind: str) -> None:
    """``check_quota`` against ``state`` (an HTTP front has the node check it)."""
    limit = options.quotas[kind]
    count: int = getattr(state.counts(), kind)
    if count >= limit:
        raise QuotaExceeded(
            "quota_exceeded",
            f"the farm already holds {count} {kind.replace('_', ' ')}, its limit "
            f"(limits.max_{kind})",
            {"kind": kind, "limit": limit, "count": count},
        )
