"""Replaying a collected event log through ``raft3d.domain``'s own ``apply``.

Events carry each command's fields but not the idempotency fingerprint (a hash of the HTTP
request the server saw). The replay recomputes it with the API's own ``fingerprint`` from
the request the chaos clients send (always with explicit ids, no optional extras), so a
state restored from a node's snapshot file continues exactly like the node.

Where no node reported some entries (all had compacted them before the collector read
them), the replay restores the smallest archived snapshot that covers the missing indexes
(``archive``) and goes on from there; reads at indexes inside the hole cannot be checked
and are counted as such.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from raft3d.api.idempotency import fingerprint
from raft3d.api.rendering import outcome_json
from raft3d.domain import (
    Command,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    FarmStateMachine,
    FilamentType,
    IdempotencyTag,
    InvalidCommandError,
    JobStatus,
    UpdateJobStatus,
    encode_command,
)
from raft3d.domain.snapshot import decode_snapshot

from .history import list_digest

NOOP = "noop"
MEMBERSHIP = "membership"  # a configuration change: no farm command, no outcome
# Fields a node may add to a filament beyond ``Filament.to_dict()``, and how to compute them.
COMPUTED_FILAMENT_FIELDS = ("available_weight_in_grams",)

_CLASSES: dict[str, type[Command]] = {
    cls.TYPE: cls for cls in (CreatePrinter, CreateFilament, CreatePrintJob, UpdateJobStatus)
}
_ROUTES = {
    "create_printer": "/api/v1/printers",
    "create_filament": "/api/v1/filaments",
    "create_print_job": "/api/v1/print_jobs",
    "update_job_status": "/api/v1/print_jobs/{id}/status",
}


def request_fingerprint(kind: str, args: dict[str, Any]) -> str:
    """The fingerprint the API computed for the request the chaos client sent."""
    fields = dict(args)
    if kind == "update_job_status":
        fields = {"id": args["job_id"], "status": args["status"]}
    return fingerprint("POST", _ROUTES[kind], fields)


def command_from_event(event: dict[str, Any]) -> Command:
    """The command an event stands for; raises InvalidCommandError if it cannot be rebuilt."""
    cls = _CLASSES.get(event.get("type", ""))
    payload = event.get("payload")
    if cls is None or not isinstance(payload, dict):
        raise InvalidCommandError(f"event {event.get('index')}: unknown type {event.get('type')}")
    args = {k: v for k, v in payload.items() if k != "idempotency"}
    tag = None
    if isinstance(payload.get("idempotency"), dict):
        tag = IdempotencyTag(payload["idempotency"]["key"], request_fingerprint(cls.TYPE, args))
    if "type" in args and cls is CreateFilament:
        args["type"] = FilamentType(args["type"])
    if "status" in args:
        args["status"] = JobStatus(args["status"])
    try:
        return cls(**args, idempotency=tag)
    except TypeError as exc:
        raise InvalidCommandError(str(exc)) from exc


TARGETS = ("printers", "filaments", "jobs_queued", "jobs_running", "jobs")


def state_list(sm: FarmStateMachine, target: str, extra: Iterable[str] = ()) -> list[Any]:
    """One list as the API renders it (``target``: a read target, or ``jobs`` for all)."""
    if target == "printers":
        return [p.to_dict() for p in sm.printers()]
    if target == "filaments":
        filaments = []
        for f in sm.filaments():
            item = f.to_dict()
            if "available_weight_in_grams" in extra:
                reserved = sm.reserved_grams(f.id)
                item["available_weight_in_grams"] = f.remaining_weight_in_grams - reserved
            filaments.append(item)
        return filaments
    status = {"jobs_queued": JobStatus.QUEUED, "jobs_running": JobStatus.RUNNING}.get(target)
    return [j.to_dict() for j in sm.print_jobs(status)]


def state_lists(sm: FarmStateMachine, extra: Iterable[str] = ()) -> dict[str, Any]:
    return {target: state_list(sm, target, tuple(extra)) for target in TARGETS}


@dataclass
class ReplayResult:
    last_index: int = 0  # the replay covers indexes 1..last_index (holes bridged)
    gap: int | None = None  # the first index that neither events nor a snapshot cover
    outcomes: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    digests: dict[tuple[int, str], str] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)  # state lists at last_index
    errors: list[str] = field(default_factory=list)
    first_application: dict[str, int] = field(default_factory=dict)  # key -> first index
    # Keys first applied inside a bridged hole: their result, from the snapshot's table.
    bridged_keys: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    bridges: list[tuple[int, int]] = field(default_factory=list)  # (first missing, snapshot)
    unverifiable: set[int] = field(default_factory=set)  # read indexes inside a hole
    # (index, target, part) -> what the list showed of that part (see ``model.project``)
    projections: dict[tuple[int, str, str], object] = field(default_factory=dict)


def _part_views(sm: FarmStateMachine, target: str) -> dict[str, object]:
    """What a ``target`` list shows of every part, keyed by part name."""
    if target == "printers":
        return {f"printer:{p.id}": True for p in sm.printers()}
    if target == "filaments":
        return {f"filament:{f.id}": f.remaining_weight_in_grams for f in sm.filaments()}
    status = JobStatus.QUEUED if target == "jobs_queued" else JobStatus.RUNNING
    by_roll: dict[str, set[str]] = {}
    for job in sm.print_jobs(status):
        by_roll.setdefault(f"filament:{job.filament_id}", set()).add(job.id)
    return {part: frozenset(ids) for part, ids in by_roll.items()}


def _absent(target: str) -> object:
    return {"printers": False, "filaments": None}.get(target, frozenset())


def replay(
    events: dict[int, dict[str, Any]],
    wanted: dict[int, set[str]],
    extra_fields: Iterable[str] = (),
    snapshots: dict[int, bytes] | None = None,
    projections: dict[int, set[tuple[str, str]]] | None = None,
) -> ReplayResult:
    """Apply ``events`` in index order; digest the lists named in ``wanted[index]`` as they
    stood after every entry up to that index. ``snapshots``: index -> state machine bytes;
    ``projections``: index -> (target, part) pairs whose view to record."""
    result = ReplayResult()
    sm = FarmStateMachine()
    extra = tuple(extra_fields)
    want_at = sorted(wanted)
    snapshot_at = sorted(snapshots or {})
    served = 0

    def serve(upto: int, valid_from: int = 0) -> None:
        nonlocal served
        stop = bisect.bisect_right(want_at, upto)
        if served >= stop:
            return
        digests: dict[str, str] = {}  # the state is the same for every index served here
        views: dict[str, dict[str, object]] = {}
        for index in want_at[served:stop]:
            if index < valid_from:
                result.unverifiable.add(index)
                continue
            for target in wanted[index]:
                if target not in digests:
                    digests[target] = list_digest(state_list(sm, target, extra))
                result.digests[(index, target)] = digests[target]
            for target, part in (projections or {}).get(index, ()):
                if target not in views:
                    views[target] = _part_views(sm, target)
                result.projections[(index, target, part)] = views[target].get(part, _absent(target))
        served = stop

    def bridge(missing: int, resume: int) -> bool:
        """Restore the smallest snapshot at or past ``resume - 1``; False if there is none."""
        k = bisect.bisect_left(snapshot_at, resume - 1)
        if snapshots is None or k == len(snapshot_at):
            return False
        index = snapshot_at[k]
        data = snapshots[index]
        known = set(result.first_application)
        serve(missing - 1)
        sm.restore(data)
        for key, record in decode_snapshot(data, sm.IDEMPOTENCY_CAPACITY).idempotency.records():
            if key not in known:
                result.bridged_keys[key] = outcome_json(record.result)
        result.bridges.append((missing, index))
        result.last_index = index
        serve(index, valid_from=index)
        return True

    expected = 1
    for index in sorted(events):
        if index > expected:
            if not bridge(expected, index):
                result.gap = expected
                break
            expected = result.last_index + 1
            if index > expected:
                result.gap = expected
                break
        if index < expected:  # inside the snapshot just restored
            key = ((events[index].get("payload") or {}).get("idempotency") or {}).get("key")
            if key is not None:
                result.first_application.setdefault(key, index)
            continue
        expected = index + 1
        serve(index - 1)
        event = events[index]
        if event.get("type") in (NOOP, MEMBERSHIP):
            result.outcomes[index] = None
        else:
            try:
                command = command_from_event(event)
            except (InvalidCommandError, ValueError) as exc:
                result.errors.append(f"index {index}: cannot rebuild the command: {exc}")
                result.gap = index
                break
            outcome = sm.apply(index, encode_command(command))
            result.outcomes[index] = outcome_json(outcome)
            if command.idempotency is not None:
                result.first_application.setdefault(command.idempotency.key, index)
        result.last_index = index
    serve(result.last_index)
    result.final = state_lists(sm, extra)
    return result
