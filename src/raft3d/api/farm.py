"""Handlers for the print-farm endpoints of SPEC §4 (printers, filaments, print jobs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web
from marshmallow import ValidationError

from raft3d.api import objects
from raft3d.api.errors import BadRequest, NotFound
from raft3d.api.idempotency import tag_for
from raft3d.api.inputs import query_params, read_json_object
from raft3d.api.listing import PAGE_PARAMS, Listable, page_request, send_list
from raft3d.api.quotas import check_quota
from raft3d.api.reads import CONSISTENCY_PARAM, consistent_read
from raft3d.api.schemas import (
    MAX_ID_CHARS,
    FastLoader,
    FilamentSchema,
    PrinterSchema,
    PrintJobSchema,
    StatusChangeSchema,
    job_status_field,
)
from raft3d.api.typedefs import NODE_KEY, STATE_KEY
from raft3d.api.writes import submit
from raft3d.domain.commands import (
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    UpdateJobStatus,
)
from raft3d.domain.model import JobStatus

STATUS_PARAM = "status"

# Loaded through FastLoader: the schemas' own fields check every value, minus the per-call
# cost of Schema.load (bodies it does not cover go through Schema.load itself).
_printer_schema = FastLoader(PrinterSchema())
_filament_schema = FastLoader(FilamentSchema())
_print_job_schema = FastLoader(PrintJobSchema())
_status_change_schema = StatusChangeSchema()
_status_field = job_status_field()


T = TypeVar("T", bound=Listable)


def _new_id() -> str:
    # Chosen here, before proposing, so every replica applies the same id.
    return uuid.uuid4().hex


async def _validated_body(request: web.Request, schema: FastLoader) -> dict[str, Any]:
    query_params(request, ())  # creation takes no query parameters
    body = await read_json_object(request, required=True)
    assert body is not None  # required=True
    try:
        loaded = schema.load(body)
    except ValidationError as exc:
        raise BadRequest("invalid_body", "the body is not valid", _messages(exc)) from None
    return loaded


def _messages(exc: ValidationError) -> Mapping[str, object]:
    messages = exc.messages
    return messages if isinstance(messages, dict) else {"_body": messages}


async def _listing(
    request: web.Request,
    params: Mapping[str, str],
    items: Sequence[T],
    keep: Callable[[T], bool] | None = None,
) -> web.StreamResponse:
    page = page_request(params)
    # The index the data was read at: taken with the data, with no await in between.
    applied = request.app[NODE_KEY].applied_index
    return await send_list(request, items, page, applied_index=applied, keep=keep)


async def create_printer(request: web.Request) -> web.StreamResponse:
    fields = await _validated_body(request, _printer_schema)
    check_quota(request, "printers")
    tag = tag_for(request, fields)
    command = CreatePrinter(
        id=fields.get("id") or _new_id(),
        company=fields["company"],
        model=fields["model"],
        idempotency=tag,
    )
    return await submit(request, command, success_status=201)


async def list_printers(request: web.Request) -> web.StreamResponse:
    params = await consistent_read(request, extra_params=PAGE_PARAMS)
    return await _listing(request, params, request.app[STATE_KEY].printers())


async def create_filament(request: web.Request) -> web.StreamResponse:
    fields = await _validated_body(request, _filament_schema)
    check_quota(request, "filaments")
    # Defaulted before fingerprinting: omitting it or giving the total asks for the same roll.
    fields.setdefault("remaining_weight_in_grams", fields["total_weight_in_grams"])
    tag = tag_for(request, fields)
    command = CreateFilament(
        id=fields.get("id") or _new_id(),
        type=fields["type"],
        color=fields["color"],
        total_weight_in_grams=fields["total_weight_in_grams"],
        remaining_weight_in_grams=fields["remaining_weight_in_grams"],
        idempotency=tag,
    )
    return await submit(request, command, success_status=201)


async def list_filaments(request: web.Request) -> web.StreamResponse:
    params = await consistent_read(request, extra_params=PAGE_PARAMS)
    return await _listing(request, params, objects.roll_views(request.app[STATE_KEY]))


async def create_print_job(request: web.Request) -> web.StreamResponse:
    fields = await _validated_body(request, _print_job_schema)
    check_quota(request, "print_jobs")
    fields.pop("status", None)  # only ever Queued: it does not change what is asked
    tag = tag_for(request, fields)
    command = CreatePrintJob(
        id=fields.get("id") or _new_id(),
        printer_id=fields["printer_id"],
        filament_id=fields["filament_id"],
        filepath=fields["filepath"],
        print_weight_in_grams=fields["print_weight_in_grams"],
        idempotency=tag,
    )
    return await submit(request, command, success_status=201)


def _status_param(value: str) -> JobStatus:
    try:
        status: JobStatus = _status_field.deserialize(value)
    except ValidationError as exc:
        raise BadRequest(
            "invalid_query", "the query string is not valid", {STATUS_PARAM: exc.messages}
        ) from None
    return status


async def list_print_jobs(request: web.Request) -> web.StreamResponse:
    # Filters are checked before the read barrier: a bad request costs the cluster nothing.
    params = query_params(request, (CONSISTENCY_PARAM, *objects.JOB_FILTER_PARAMS, *PAGE_PARAMS))
    filters = objects.JobFilters(params)
    params = await consistent_read(request, extra_params=(*objects.JOB_FILTER_PARAMS, *PAGE_PARAMS))
    # All jobs in creation order, filtered while they are encoded: a filter over a big farm
    # is then sliced like the encoding, and ``after`` may name a job that no longer matches.
    keep = filters.matches if filters.any else None
    return await _listing(request, params, request.app[STATE_KEY].print_jobs(), keep)


def _job_id_from_path(request: web.Request) -> str:
    job_id = request.match_info["id"]
    try:
        job_id.encode("utf-8")
    except UnicodeEncodeError:
        job_id = ""
    if not 1 <= len(job_id) <= MAX_ID_CHARS:
        # No job can have this id: nothing to ask the cluster.
        raise NotFound(
            "job_not_found", f"no print job has id {request.match_info['id']!r}", {"id": job_id}
        )
    return job_id


async def change_job_status(request: web.Request) -> web.StreamResponse:
    """Endpoint 7: the target status comes from ``?status=`` or a ``{"status": ...}`` body."""
    params = query_params(request, (STATUS_PARAM,))
    from_query = _status_param(params[STATUS_PARAM]) if STATUS_PARAM in params else None
    body = await read_json_object(request, required=False)
    from_body: JobStatus | None = None
    if body is not None:
        try:
            from_body = _status_change_schema.load(body).get("status")
        except ValidationError as exc:
            raise BadRequest("invalid_body", "the body is not valid", _messages(exc)) from None
    if from_query is not None and from_body is not None and from_query != from_body:
        raise BadRequest(
            "conflicting_status",
            "the query string and the body ask for different statuses",
            {"query": from_query.value, "body": from_body.value},
        )
    target = from_query or from_body
    if target is None:
        raise BadRequest(
            "invalid_body",
            'the target status is missing: give ?status=... or a body {"status": ...}',
            {STATUS_PARAM: ["Missing data for required field."]},
        )
    job_id = _job_id_from_path(request)
    tag = tag_for(request, {"id": job_id, "status": target})
    command = UpdateJobStatus(job_id=job_id, status=target, idempotency=tag)
    return await submit(request, command, success_status=200)
