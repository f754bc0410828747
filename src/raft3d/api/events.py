"""The event log: ``GET /api/v1/events``, this node's committed commands in log order.

Each event is one applied log entry::

    {"index", "term", "type", "payload", "outcome"}

- ``type`` is the command's type (``create_printer``, ``update_job_status``...), ``noop`` for the
  empty entry a new leader appends at the start of its term.
- ``payload`` holds the command's fields with enums as their string values; a command sent with
  an ``Idempotency-Key`` also has ``"idempotency": {"key": ...}`` (the fingerprint is an
  internal hash and is left out). A no-op's payload is ``{}``.
- ``outcome`` is what applying the entry returned (``rendering.outcome_json``), or null when it
  is not known (a no-op).

Pages: ``?after=N`` (default 0) returns events with index > N, at most ``?limit=M`` (1..1000,
default 100). ``first_index`` is the oldest index the node still holds: older entries were
compacted into a snapshot (a node keeps ``snapshot_trailing_entries`` of them after each
snapshot), so a reader whose ``after + 1`` is below it has missed events: 410 ``compacted``
with ``first_index`` and ``snapshot_index``; it should start from
``GET /cluster/snapshots/latest`` instead. Every committed command has its outcome.
``last_index`` is the node's applied index when the page was read. Reads are linearizable by
default (``?consistency=local`` answers from this node at once).
"""

from __future__ import annotations

from aiohttp import web

from raft3d.api import headers
from raft3d.api.errors import Gone
from raft3d.api.inputs import MAX_QUERY_INT, int_param, query_params
from raft3d.api.ports import CommittedEntry, EventPageView
from raft3d.api.reads import CONSISTENCY_PARAM, consistent_read
from raft3d.api.rendering import outcome_json
from raft3d.api.typedefs import NODE_KEY
from raft3d.domain.commands import Command, command_arguments, decode_command
from raft3d.domain.errors import CommandDecodeError
from raft3d.domain.results import Result

AFTER_PARAM = "after"
LIMIT_PARAM = "limit"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
NOOP_TYPE = "noop"
# A membership change (SPEC §6), e.g. ``{"change": "add_learner", "node_id": "n4"}``.
MEMBERSHIP_TYPE = "membership"
# Never written by a healthy node (an undecodable entry halts it before it is applied); shown
# rather than failing the whole page should a log ever hold one.
UNDECODABLE_TYPE = "undecodable"


def command_payload(command: Command) -> dict[str, object]:
    payload: dict[str, object] = command_arguments(command)
    if command.idempotency is not None:
        payload["idempotency"] = {"key": command.idempotency.key}
    return payload


def event_json(entry: CommittedEntry[Result]) -> dict[str, object]:
    kind = NOOP_TYPE
    payload: dict[str, object] | None = {}
    if entry.conf_change is not None:
        change, node_id = entry.conf_change
        kind, payload = MEMBERSHIP_TYPE, {"change": change, "node_id": node_id}
    elif not entry.is_noop:
        try:
            command = decode_command(entry.data)
        except CommandDecodeError:
            kind, payload = UNDECODABLE_TYPE, None
        else:
            kind, payload = command.TYPE, command_payload(command)
    return {
        "index": entry.index,
        "term": entry.term,
        "type": kind,
        "payload": payload,
        "outcome": outcome_json(entry.outcome),
    }


def page_json(page: EventPageView[Result]) -> dict[str, object]:
    return {
        "first_index": page.first_index,
        "last_index": page.last_index,
        "events": [event_json(entry) for entry in page.events],
    }


def check_retained(after: int, page: EventPageView[object]) -> None:
    """410 ``compacted`` when events after ``after`` were compacted away on this node."""
    if after < page.first_index - 1:
        raise Gone(
            "compacted",
            f"events after {after} were compacted into a snapshot on this node; "
            f"the oldest event it holds is {page.first_index}",
            {
                "after": after,
                "first_index": page.first_index,
                "snapshot_index": page.snapshot_index,
            },
        )


async def list_events(request: web.Request) -> web.StreamResponse:
    # Checked before the read barrier: a bad request costs the cluster nothing.
    params = query_params(request, (AFTER_PARAM, LIMIT_PARAM, CONSISTENCY_PARAM))
    after = int_param(params, AFTER_PARAM, default=0, minimum=0, maximum=MAX_QUERY_INT)
    limit = int_param(params, LIMIT_PARAM, default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    await consistent_read(request, extra_params=(AFTER_PARAM, LIMIT_PARAM))
    page = request.app[NODE_KEY].events(after, limit)
    check_retained(after, page)
    return web.json_response(page_json(page), headers={headers.APPLIED_INDEX: str(page.last_index)})
