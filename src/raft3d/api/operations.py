"""What each route means, for the OpenAPI document: summary, inputs, answers.

Keyed by (method, path template) as the route table registers them; ``openapi.py`` walks the
route table and refuses a route missing here, so a new endpoint cannot go undocumented.
Schemas are the marshmallow classes themselves (``schemas.py`` for request bodies,
``response_schemas.py`` for answers and query strings), never copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from marshmallow import Schema

from raft3d.api import response_schemas as out
from raft3d.api.member_inputs import AddMemberSchema, NoBodySchema, TransferSchema
from raft3d.api.schemas import FilamentSchema, PrinterSchema, PrintJobSchema, StatusChangeSchema

JSON = "application/json"
HTML = "text/html"


@dataclass(frozen=True)
class Answer:
    description: str
    schema: type[Schema] | None = None
    many: bool = False
    content_type: str = JSON


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    body_required: bool = True
    path_id: str | None = None  # what the path's ``{...}`` part names
    example: Mapping[str, object] | None = None  # a request body that succeeds
    errors: Mapping[int, str] = field(default_factory=dict)


def _ok(description: str, schema: type[Schema] | None = None, *, many: bool = False) -> Answer:
    return Answer(description, schema, many)


_READ_ERRORS = {
    400: "bad query string",
    503: "no quorum confirmed the read in time, or (?consistency=local) this node is restoring "
    "its state from a snapshot",
}
_WRITE_ERRORS = {
    400: "malformed body or query (bad JSON, wrong types, unknown fields, out-of-range values)",
    409: "duplicate id, not enough filament, or an illegal status change",
    413: "body too large",
    415: "not a JSON body",
    422: "a referenced printer or filament does not exist, or an idempotency key was reused",
    503: "no leader or no quorum within the request timeout (see Retry-After)",
}
_CHANGE_ERRORS = {
    400: "malformed body or query, or a bad address (invalid_address)",
    409: "member_exists, change_in_progress (retry shortly), would_lose_quorum, "
    "conf_change_refused",
    503: "no leader within the request timeout, a leadership transfer in progress, or this "
    "node was removed from the cluster (node_removed)",
    504: "not seen to commit in time (it may still take effect)",
}
_MEMBER_ERRORS = {**_CHANGE_ERRORS, 404: "no member has this id (unknown_member)"}
_BY_ID_ERRORS = {**_READ_ERRORS, 404: "no object has this id"}
_PAGE = Answer("the page", content_type=HTML)

API = "/api/v1"

OPERATIONS: Mapping[tuple[str, str], Operation] = {
    ("POST", f"{API}/printers"): Operation(
        "Create a printer",
        "printers",
        {201: _ok("the created printer", out.PrinterOut)},
        body=PrinterSchema,
        example={"id": "p1", "company": "Creality", "model": "Ender 3"},
        errors=_WRITE_ERRORS,
    ),
    ("GET", f"{API}/printers"): Operation(
        "List printers in creation order",
        "printers",
        {200: _ok("every printer", out.PrinterOut, many=True)},
        query=out.ListQuery,
        errors=_READ_ERRORS,
    ),
    ("GET", f"{API}/printers/{{id}}"): Operation(
        "Read one printer",
        "printers",
        {200: _ok("the printer", out.PrinterOut)},
        query=out.ConsistencyQuery,
        path_id="printer id",
        errors=_BY_ID_ERRORS,
    ),
    ("POST", f"{API}/filaments"): Operation(
        "Create a filament roll (remaining weight defaults to the total)",
        "filaments",
        {201: _ok("the created roll", out.FilamentOut)},
        body=FilamentSchema,
        example={"id": "f1", "type": "PLA", "color": "red", "total_weight_in_grams": 1000},
        errors=_WRITE_ERRORS,
    ),
    ("GET", f"{API}/filaments"): Operation(
        "List filament rolls in creation order, with the weight still free to reserve",
        "filaments",
        {200: _ok("every roll", out.FilamentView, many=True)},
        query=out.ListQuery,
        errors=_READ_ERRORS,
    ),
    ("GET", f"{API}/filaments/{{id}}"): Operation(
        "Read one filament roll",
        "filaments",
        {200: _ok("the roll", out.FilamentView)},
        query=out.ConsistencyQuery,
        path_id="filament id",
        errors=_BY_ID_ERRORS,
    ),
    ("POST", f"{API}/print_jobs"): Operation(
        "Create a print job (Queued; reserves its weight on the roll)",
        "print jobs",
        {201: _ok("the created job", out.PrintJobOut)},
        body=PrintJobSchema,
        example={
            "id": "j1",
            "printer_id": "p1",
            "filament_id": "f1",
            "filepath": "prints/sword/hilt.gcode",
            "print_weight_in_grams": 100,
        },
        errors=_WRITE_ERRORS,
    ),
    ("GET", f"{API}/print_jobs"): Operation(
        "List print jobs in creation order; the filters combine",
        "print jobs",
        {200: _ok("the matching jobs", out.PrintJobOut, many=True)},
        query=out.JobListQuery,
        errors=_READ_ERRORS,
    ),
    ("GET", f"{API}/print_jobs/{{id}}"): Operation(
        "Read one print job",
        "print jobs",
        {200: _ok("the job", out.PrintJobOut)},
        query=out.ConsistencyQuery,
        path_id="print job id",
        errors=_BY_ID_ERRORS,
    ),
    ("POST", f"{API}/print_jobs/{{id}}/status"): Operation(
        "Change a job's status: Queued→Running→Done, Queued/Running→Cancelled",
        "print jobs",
        {200: _ok("the updated job", out.PrintJobOut)},
        query=out.StatusQuery,
        body=StatusChangeSchema,
        body_required=False,
        example={"status": "running"},
        path_id="print job id",
        errors={**_WRITE_ERRORS, 404: "no print job has this id"},
    ),
    ("PUT", f"{API}/print_jobs/{{id}}/status"): Operation(
        "Change a job's status (same as POST)",
        "print jobs",
        {200: _ok("the updated job", out.PrintJobOut)},
        query=out.StatusQuery,
        body=StatusChangeSchema,
        body_required=False,
        example={"status": "running"},
        path_id="print job id",
        errors={**_WRITE_ERRORS, 404: "no print job has this id"},
    ),
    ("GET", f"{API}/events"): Operation(
        "Committed commands in log order, each with its outcome",
        "events",
        {200: _ok("a page of events", out.EventPageOut)},
        query=out.EventsQuery,
        errors={**_READ_ERRORS, 410: "the events after this index were compacted away"},
    ),
    # Served once the event stream lands (SPEC §7); documented here so the merge needs nothing.
    ("GET", f"{API}/events/stream"): Operation(
        "Committed commands as Server-Sent Events (id: log index; resumes after Last-Event-ID)",
        "events",
        {200: Answer("an event stream that stays open", content_type="text/event-stream")},
        query=out.StreamQuery,
        errors={**_READ_ERRORS, 410: "the events after this index were compacted away"},
    ),
    ("GET", "/cluster/status"): Operation(
        "This node's view of the cluster: role, term, indexes, peers",
        "cluster",
        {200: _ok("the node's status", out.ClusterStatusOut)},
    ),
    ("GET", "/cluster/members"): Operation(
        "The cluster's members as this node knows them: voters, then learners",
        "membership",
        {200: _ok("the configuration in effect on this node", out.MembershipOut)},
        errors={400: "bad query string"},
    ),
    ("POST", "/cluster/members"): Operation(
        "Add a member (as a learner, promoted to voter once caught up unless promote=false)",
        "membership",
        {201: _ok("committed: the new configuration", out.MembershipOut)},
        body=AddMemberSchema,
        example={
            "node_id": "node4",
            "raft_addr": "127.0.0.1:9004",
            "http_addr": "http://127.0.0.1:8083",
        },
        errors=_CHANGE_ERRORS,
    ),
    ("POST", "/cluster/members/{id}/promote"): Operation(
        "Promote a learner to voter now",
        "membership",
        {200: _ok("committed: the new configuration", out.MembershipOut)},
        query=out.ForceQuery,
        path_id="node id",
        body=NoBodySchema,
        body_required=False,
        errors={
            **_MEMBER_ERRORS,
            409: "not_caught_up (the learner trails the leader: ?force=true insists), "
            "change_in_progress, conf_change_refused",
        },
    ),
    ("DELETE", "/cluster/members/{id}"): Operation(
        "Remove a member (the leader hands leadership over first)",
        "membership",
        {200: _ok("committed: the new configuration", out.MembershipOut)},
        query=out.ForceQuery,
        path_id="node id",
        errors=_MEMBER_ERRORS,
    ),
    ("POST", "/cluster/leader"): Operation(
        "Hand leadership to another voter (the given one, or the most caught-up)",
        "membership",
        {200: _ok("another voter leads", out.LeaderOut)},
        body=TransferSchema,
        body_required=False,
        example={"node_id": "node2"},
        errors={**_CHANGE_ERRORS, 409: "transfer_refused: the target is not a caught-up voter"},
    ),
    ("GET", "/raft/state"): Operation(
        "This node's Raft state as one word: Leader, Follower, Candidate or Learner",
        "membership",
        {200: Answer("the state", content_type="text/plain")},
        errors={400: "bad query string"},
    ),
    ("POST", "/join"): Operation(
        "Add a member, seed-compatible spelling of POST /cluster/members",
        "membership",
        {200: _ok("committed: the new configuration", out.MembershipOut)},
        query=out.JoinQuery,
        errors=_CHANGE_ERRORS,
    ),
    ("DELETE", "/cluster/servers"): Operation(
        "Remove a member, seed-compatible spelling of DELETE /cluster/members/{id}",
        "membership",
        {200: _ok("committed: the new configuration", out.MembershipOut)},
        query=out.ServersQuery,
        errors=_MEMBER_ERRORS,
    ),
    ("GET", "/cluster/snapshots"): Operation(
        "This node's snapshots, newest first",
        "cluster",
        {200: _ok("the snapshots", out.SnapshotListOut)},
        errors={400: "bad query string", 500: "the snapshot directory could not be read"},
    ),
    ("POST", "/cluster/snapshots"): Operation(
        "Take a snapshot on this node now",
        "cluster",
        {
            201: _ok("the new snapshot", out.SnapshotOut),
            200: _ok(
                "nothing was applied since the newest one, which is returned", out.SnapshotOut
            ),
        },
        errors={
            400: "bad query string or body",
            409: "nothing was ever applied",
            500: "the snapshot could not be written",
        },
    ),
    ("GET", "/cluster/snapshots/latest"): Operation(
        "The farm as this node's newest snapshot holds it",
        "cluster",
        {200: _ok("the newest snapshot", out.LatestSnapshotOut)},
        errors={
            400: "bad query string",
            404: "no snapshot yet",
            500: "the snapshot could not be read",
        },
    ),
    ("GET", "/healthz"): Operation(
        "The process is up", "operations", {200: _ok("up", out.HealthOut)}, errors={503: "halted"}
    ),
    ("GET", "/readyz"): Operation(
        "A leader is known and this node has applied what it knows committed",
        "operations",
        {200: _ok("ready", out.ReadyOut)},
        errors={503: "not ready"},
    ),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics",
        "operations",
        {200: Answer("metrics in the Prometheus text format", content_type="text/plain")},
    ),
    ("GET", "/openapi.json"): Operation(
        "This document", "documentation", {200: Answer("the OpenAPI 3 document")}
    ),
    ("GET", "/docs"): Operation("The API reference, readable", "documentation", {200: _PAGE}),
    ("GET", "/"): Operation("The farm dashboard", "documentation", {200: _PAGE}),
    ("GET", "/static/{name}"): Operation(
        "The dashboard's and the reference's scripts and styles",
        "documentation",
        {200: Answer("the file", content_type="application/octet-stream")},
        path_id="file name",
        errors={404: "no such file"},
    ),
}
