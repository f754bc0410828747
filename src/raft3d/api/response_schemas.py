"""What the API answers, as marshmallow schemas, for the OpenAPI document (``openapi.py``).

Request bodies are described by the schemas that validate them (``schemas.py``); these
describe responses and query strings. Handlers render plain dicts; ``tests/test_openapi.py``
and schemathesis in CI check that what they render matches these.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, fields, validate

from raft3d.api.listing import MAX_LIMIT as MAX_LIST_LIMIT
from raft3d.api.schemas import MAX_ID_CHARS, CaseInsensitiveEnum, job_status_field
from raft3d.domain.model import FilamentType, JobStatus

_ROLES = ("leader", "follower", "candidate")
_SUFFRAGES = ("voter", "learner", "removed", "none")


def _enum(values: list[str]) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(values))


class _Closed(Schema):
    """A response object: the fields marked required are always present, there are no others."""


class _Open(Schema):
    """A response that may grow fields (cluster facts): clients ignore the ones they do not know."""

    class Meta:
        unknown = INCLUDE


class PrinterOut(_Closed):
    id = fields.String(required=True)
    company = fields.String(required=True)
    model = fields.String(required=True)


class FilamentOut(_Closed):
    id = fields.String(required=True)
    type = _enum([t.value for t in FilamentType])
    color = fields.String(required=True)
    total_weight_in_grams = fields.Integer(required=True)
    remaining_weight_in_grams = fields.Integer(required=True)


class FilamentView(FilamentOut):
    available_weight_in_grams = fields.Integer(
        required=True,
        metadata={"description": "remaining minus the weight of Queued/Running jobs on the roll"},
    )


class PrintJobOut(_Closed):
    id = fields.String(required=True)
    printer_id = fields.String(required=True)
    filament_id = fields.String(required=True)
    filepath = fields.String(required=True)
    print_weight_in_grams = fields.Integer(required=True)
    status = _enum([s.value for s in JobStatus])


class ErrorDetail(_Closed):
    code = fields.String(required=True, metadata={"example": "job_not_found"})
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorOut(_Closed):
    error = fields.Nested(ErrorDetail, required=True)


class PeerOut(_Open):
    node_id = fields.String(required=True)
    raft_addr = fields.String(required=True)
    http_addr = fields.String(required=True)
    reachable = fields.Boolean(required=True)
    match_index = fields.Integer(required=True, allow_none=True)


class ClusterStatusOut(_Open):
    node_id = fields.String(required=True)
    role = _enum(list(_ROLES))
    term = fields.Integer(required=True)
    leader_id = fields.String(required=True, allow_none=True)
    leader_http = fields.String(required=True, allow_none=True)
    commit_index = fields.Integer(required=True)
    applied_index = fields.Integer(required=True)
    last_log_index = fields.Integer(required=True)
    snapshot_index = fields.Integer(required=True)
    peers = fields.List(fields.Nested(PeerOut), required=True)
    pid = fields.Integer(required=True)
    suffrage = _enum(list(_SUFFRAGES))
    recovering = fields.Boolean(
        required=True,
        metadata={"description": "rejoining after losing its log; votes again once caught up"},
    )
    cluster_id = fields.String(required=True, metadata={"description": "empty until known"})


class MemberOut(_Open):
    node_id = fields.String(required=True)
    raft_addr = fields.String(required=True, metadata={"example": "127.0.0.1:9001"})
    http_addr = fields.String(required=True, metadata={"example": "http://127.0.0.1:8080"})
    suffrage = _enum(["voter", "learner"])
    reachable = fields.Boolean(required=True)
    match_index = fields.Integer(
        required=True, allow_none=True, metadata={"description": "known on the leader only"}
    )


class MembershipOut(_Open):
    config_index = fields.Integer(
        required=True, metadata={"description": "log index of the entry that set it (0: conf/)"}
    )
    change_pending = fields.Boolean(
        required=True, metadata={"description": "the configuration entry is not committed yet"}
    )
    members = fields.List(
        fields.Nested(MemberOut),
        required=True,
        metadata={"description": "voters first, then learners, each sorted by node id"},
    )
    cluster_id = fields.String(metadata={"description": "on a change, when the node knows it"})


class LeaderOut(_Closed):
    leader_id = fields.String(required=True)


class HealthOut(_Open):
    status = fields.String(required=True)


class ReadyOut(_Open):
    status = fields.String(required=True)
    leader_id = fields.String(required=True, allow_none=True)
    commit_index = fields.Integer(required=True)
    applied_index = fields.Integer(required=True)


class EventOut(_Closed):
    index = fields.Integer(required=True)
    term = fields.Integer(required=True)
    type = fields.String(required=True, metadata={"example": "create_printer"})
    payload = fields.Dict(required=True, allow_none=True)
    outcome = fields.Dict(required=True, allow_none=True)


class EventPageOut(_Closed):
    first_index = fields.Integer(required=True)
    last_index = fields.Integer(required=True)
    events = fields.List(fields.Nested(EventOut), required=True)


class SnapshotOut(_Open):
    index = fields.Integer(required=True)
    term = fields.Integer(required=True)
    size = fields.Integer(required=True)
    created_at = fields.String(required=True, metadata={"example": "2026-05-01T12:00:00.250Z"})
    note = fields.String()


class SnapshotListOut(_Closed):
    snapshots = fields.List(fields.Nested(SnapshotOut), required=True)


class SnapshotStateOut(_Closed):
    printers = fields.List(fields.Nested(PrinterOut), required=True)
    filaments = fields.List(fields.Nested(FilamentOut), required=True)
    print_jobs = fields.List(fields.Nested(PrintJobOut), required=True)


class LatestSnapshotOut(_Open):
    index = fields.Integer(required=True)
    term = fields.Integer(required=True)
    created_at = fields.String()
    state = fields.Nested(SnapshotStateOut, required=True)


# -- query strings ---------------------------------------------------------------------


class ConsistencyQuery(Schema):
    consistency = fields.String(
        validate=validate.OneOf(["linearizable", "local"]),
        metadata={"description": "linearizable (default) or local: this node's state at once"},
    )


class ListQuery(ConsistencyQuery):
    limit = fields.Integer(
        validate=validate.Range(1, MAX_LIST_LIMIT),
        metadata={"description": 'page size; a Link: rel="next" header names the next page'},
    )
    after = fields.String(
        validate=validate.Length(min=1),
        metadata={"description": "the id of the last item of the previous page"},
    )


class JobListQuery(ListQuery):
    status = job_status_field(metadata={"description": "Queued, Running, Done or Cancelled"})
    printer_id = fields.String(
        validate=validate.Length(1, MAX_ID_CHARS), metadata={"description": "jobs on this printer"}
    )
    filament_id = fields.String(
        validate=validate.Length(1, MAX_ID_CHARS), metadata={"description": "jobs on this roll"}
    )


class StatusQuery(Schema):
    status = job_status_field(metadata={"description": "the target status (or in the body)"})


class EventsQuery(ConsistencyQuery):
    after = fields.Integer(validate=validate.Range(0, 2**63 - 1), metadata={"example": 0})
    limit = fields.Integer(validate=validate.Range(1, 1000), metadata={"example": 100})


class StreamQuery(Schema):
    after = fields.Integer(
        validate=validate.Range(0, 2**63 - 1),
        metadata={"description": "start after this index (Last-Event-ID wins)"},
    )


class ForceQuery(Schema):
    force = fields.String(
        validate=validate.OneOf(["true", "false"]),
        metadata={
            "description": "remove even if the rest could not reach a quorum; promote a "
            "learner that has not caught up"
        },
    )


class JoinQuery(Schema):
    node_id = fields.String(required=True, metadata={"example": "node4"})
    addr = fields.String(
        required=True, metadata={"description": "Raft address", "example": "127.0.0.1:9004"}
    )
    http = fields.String(
        required=True, metadata={"description": "HTTP base URL", "example": "http://127.0.0.1:8083"}
    )
    promote = fields.String(
        validate=validate.OneOf(["true", "false"]),
        metadata={"description": "promote once caught up (default true)"},
    )


class ServersQuery(ForceQuery):
    id = fields.String(required=True, metadata={"description": "the member to remove"})


def enum_pattern(field: CaseInsensitiveEnum[Any]) -> str:
    """A regular expression accepting exactly what a case-insensitive enum field accepts."""

    def any_case(word: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)

    return "^(" + "|".join(any_case(name) for name in sorted(field.by_name)) + ")$"
