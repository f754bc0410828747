"""Reads of one object by id, the job list's filters and the filament view (SPEC §8).

Every read here goes through ``consistent_read``: linearizable by default, ``?consistency=local``
for this node's own (possibly stale) state. A roll is shown with ``available_weight_in_grams``,
what new jobs may still reserve on it, computed from the same committed state as the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from aiohttp import web
from marshmallow import ValidationError

from raft3d.api import headers
from raft3d.api.errors import BadRequest, NotFound
from raft3d.api.reads import consistent_read
from raft3d.api.schemas import Id, job_status_field
from raft3d.api.typedefs import NODE_KEY, STATE_KEY
from raft3d.domain.model import Filament, JobStatus, PrintJob
from raft3d.domain.state import FarmStateMachine

STATUS_PARAM = "status"
PRINTER_PARAM = "printer_id"
FILAMENT_PARAM = "filament_id"
JOB_FILTER_PARAMS = (STATUS_PARAM, PRINTER_PARAM, FILAMENT_PARAM)

_status_field = job_status_field()
_id_field = Id()


@dataclass(frozen=True, slots=True)
class RollView:
    """A filament roll as reads show it: its fields plus the weight still free to reserve."""

    filament: Filament
    available_weight_in_grams: int

    @property
    def id(self) -> str:
        return self.filament.id

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.filament.to_dict(),
            "available_weight_in_grams": self.available_weight_in_grams,
        }


def roll_view(state: FarmStateMachine, filament: Filament) -> RollView:
    return RollView(filament, state.available_grams(filament))


class RollViews(Sequence[RollView]):
    """Every roll as reads show them, made as the list is encoded (possibly across slices of
    loop time) from the rolls and reservations taken together, so all come from one state."""

    def __init__(self, state: FarmStateMachine) -> None:
        self._rolls = state.filaments()
        self._reserved = state.reservations()

    def __len__(self) -> int:
        return len(self._rolls)

    @overload
    def __getitem__(self, index: int) -> RollView: ...

    @overload
    def __getitem__(self, index: slice) -> list[RollView]: ...

    def __getitem__(self, index: int | slice) -> RollView | list[RollView]:
        if isinstance(index, slice):
            return [self._view(roll) for roll in self._rolls[index]]
        return self._view(self._rolls[index])

    def _view(self, roll: Filament) -> RollView:
        return RollView(roll, roll.remaining_weight_in_grams - self._reserved.get(roll.id, 0))


def roll_views(state: FarmStateMachine) -> RollViews:
    """Every roll in creation order, as reads show them."""
    return RollViews(state)


def _read_response(request: web.Request, body: object) -> web.Response:
    # The index the data was read at: taken with the data, with no await in between.
    applied = request.app[NODE_KEY].applied_index
    return web.json_response(body, headers={headers.APPLIED_INDEX: str(applied)})


def _bad_query(param: str, exc: ValidationError) -> BadRequest:
    return BadRequest("invalid_query", "the query string is not valid", {param: exc.messages})


def _path_id(request: web.Request, code: str, kind: str) -> str:
    raw = request.match_info["id"]
    try:
        object_id: str = _id_field.deserialize(raw)
    except ValidationError:
        # No object can have this id (too long, not Unicode): nothing to ask the cluster.
        raise NotFound(code, f"no {kind} has id {raw!r}", {"id": raw[:128]}) from None
    return object_id


def _not_found(code: str, kind: str, object_id: str) -> NotFound:
    return NotFound(code, f"no {kind} has id {object_id!r}", {"id": object_id})


async def get_printer(request: web.Request) -> web.StreamResponse:
    printer_id = _path_id(request, "printer_not_found", "printer")
    await consistent_read(request)
    printer = request.app[STATE_KEY].printer(printer_id)
    if printer is None:
        raise _not_found("printer_not_found", "printer", printer_id)
    return _read_response(request, printer.to_dict())


async def get_filament(request: web.Request) -> web.StreamResponse:
    filament_id = _path_id(request, "filament_not_found", "filament")
    await consistent_read(request)
    state = request.app[STATE_KEY]
    filament = state.filament(filament_id)
    if filament is None:
        raise _not_found("filament_not_found", "filament", filament_id)
    return _read_response(request, roll_view(state, filament).to_dict())


async def get_print_job(request: web.Request) -> web.StreamResponse:
    job_id = _path_id(request, "job_not_found", "print job")
    await consistent_read(request)
    job = request.app[STATE_KEY].print_job(job_id)
    if job is None:
        raise _not_found("job_not_found", "print job", job_id)
    return _read_response(request, job.to_dict())


class JobFilters:
    """The job list's filters, checked; each one given narrows the list (they combine)."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self.status: JobStatus | None = None
        if STATUS_PARAM in params:
            try:
                self.status = _status_field.deserialize(params[STATUS_PARAM])
            except ValidationError as exc:
                raise _bad_query(STATUS_PARAM, exc) from None
        self.printer_id = self._id(params, PRINTER_PARAM)
        self.filament_id = self._id(params, FILAMENT_PARAM)

    @staticmethod
    def _id(params: Mapping[str, str], name: str) -> str | None:
        if name not in params:
            return None
        try:
            value: str = _id_field.deserialize(params[name])
        except ValidationError as exc:
            raise _bad_query(name, exc) from None
        return value

    def matches(self, job: PrintJob) -> bool:
        return (
            (self.status is None or job.status == self.status)
            and (self.printer_id is None or job.printer_id == self.printer_id)
            and (self.filament_id is None or job.filament_id == self.filament_id)
        )

    @property
    def any(self) -> bool:
        """Whether a filter was given at all (else every job matches)."""
        return not (self.status is None and self.printer_id is None and self.filament_id is None)
