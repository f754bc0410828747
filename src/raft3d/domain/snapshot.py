"""Snapshot encoding of the whole state machine, and the digest used to compare replicas.

The state document lists every object in creation order and every idempotency record in log
order, each in a fixed field order, so equal states encode to equal bytes. Derived data
(reserved weights) is left out and recomputed on restore.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack

from raft3d.domain._checks import check_instance, check_int, check_str, check_str_keyed_dict
from raft3d.domain.errors import SnapshotDecodeError
from raft3d.domain.farm import Farm
from raft3d.domain.idempotency import IdempotencyTable
from raft3d.domain.model import Filament, FilamentType, JobStatus, Printer, PrintJob
from raft3d.domain.results import Accepted, Rejected, Result

SNAPSHOT_FORMAT = 1

_ACCEPTED = "accepted"
_REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RestoredState:
    last_applied_index: int
    farm: Farm
    idempotency: IdempotencyTable


def state_document(farm: Farm, idempotency: IdempotencyTable) -> dict[str, Any]:
    return {
        "printers": [printer.to_dict() for printer in farm.printers()],
        "filaments": [filament.to_dict() for filament in farm.filaments()],
        "print_jobs": [job.to_dict() for job in farm.print_jobs()],
        "idempotency": [
            [key, record.fingerprint, _result_to_wire(record.result)]
            for key, record in idempotency.records()
        ],
    }


def state_digest(farm: Farm, idempotency: IdempotencyTable) -> str:
    encoded = msgpack.packb(state_document(farm, idempotency), use_bin_type=True)
    return hashlib.sha256(encoded).hexdigest()


def encode_snapshot(last_applied_index: int, farm: Farm, idempotency: IdempotencyTable) -> bytes:
    document = {
        "format": SNAPSHOT_FORMAT,
        "last_applied_index": last_applied_index,
        "state": state_document(farm, idempotency),
    }
    return msgpack.packb(document, use_bin_type=True)  # type: ignore[no-any-return]


def decode_snapshot(data: bytes, idempotency_capacity: int) -> RestoredState:
    """Rebuild a state from ``encode_snapshot`` bytes; a table over capacity keeps its newest."""
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
        return _state_from_document(document, idempotency_capacity)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise SnapshotDecodeError(f"invalid snapshot: {exc}") from exc


def _state_from_document(document: object, idempotency_capacity: int) -> RestoredState:
    top = _fields(document, "snapshot", ("format", "last_applied_index", "state"))
    if type(top["format"]) is not int or top["format"] != SNAPSHOT_FORMAT:
        raise ValueError(f"unsupported snapshot format {top['format']!r}")
    index = check_int(top["last_applied_index"], "last_applied_index", minimum=0)
    state = _fields(top["state"], "state", ("printers", "filaments", "print_jobs", "idempotency"))
    farm = Farm.from_objects(
        printers=[_printer(item) for item in check_instance(state["printers"], list, "printers")],
        filaments=[
            _filament(item) for item in check_instance(state["filaments"], list, "filaments")
        ],
        jobs=[_print_job(item) for item in check_instance(state["print_jobs"], list, "jobs")],
    )
    records = check_instance(state["idempotency"], list, "idempotency")
    table = IdempotencyTable(idempotency_capacity)
    # The table may have been written by a node with a larger capacity: keep the newest.
    for item in records[max(0, len(records) - idempotency_capacity) :]:
        key, fingerprint, result = _record(item)
        table.remember(key, fingerprint, result)
    return RestoredState(index, farm, table)


def _fields(value: object, what: str, names: tuple[str, ...]) -> dict[str, Any]:
    mapping = check_str_keyed_dict(value, what)
    if list(mapping) != list(names):
        raise ValueError(f"{what}: expected fields {list(names)}, got {list(mapping)}")
    return mapping


def _printer(value: object) -> Printer:
    fields = _fields(value, "printer", ("id", "company", "model"))
    return Printer(
        id=check_str(fields["id"], "printer.id"),
        company=check_str(fields["company"], "printer.company"),
        model=check_str(fields["model"], "printer.model"),
    )


def _filament(value: object) -> Filament:
    names = ("id", "type", "color", "total_weight_in_grams", "remaining_weight_in_grams")
    fields = _fields(value, "filament", names)
    return Filament(
        id=check_str(fields["id"], "filament.id"),
        type=FilamentType(check_str(fields["type"], "filament.type")),
        color=check_str(fields["color"], "filament.color"),
        total_weight_in_grams=check_int(fields["total_weight_in_grams"], "total", minimum=1),
        remaining_weight_in_grams=check_int(
            fields["remaining_weight_in_grams"], "remaining", minimum=0
        ),
    )


def _print_job(value: object) -> PrintJob:
    names = ("id", "printer_id", "filament_id", "filepath", "print_weight_in_grams", "status")
    fields = _fields(value, "print job", names)
    return PrintJob(
        id=check_str(fields["id"], "job.id"),
        printer_id=check_str(fields["printer_id"], "job.printer_id"),
        filament_id=check_str(fields["filament_id"], "job.filament_id"),
        filepath=check_str(fields["filepath"], "job.filepath"),
        print_weight_in_grams=check_int(fields["print_weight_in_grams"], "weight", minimum=1),
        status=JobStatus(check_str(fields["status"], "job.status")),
    )


def _result_to_wire(result: Result) -> list[Any]:
    if isinstance(result, Accepted):
        return [_ACCEPTED, result.value]
    return [_REJECTED, result.code, result.message, result.details]


def _record(value: object) -> tuple[str, str, Result]:
    item = check_instance(value, list, "idempotency record")
    if len(item) != 3:
        raise ValueError("idempotency record: expected [key, fingerprint, result]")
    key = check_str(item[0], "idempotency key")
    fingerprint = check_str(item[1], "idempotency fingerprint")
    result = check_instance(item[2], list, "idempotency result")
    if len(result) == 2 and result[0] == _ACCEPTED:
        return key, fingerprint, Accepted(value=check_str_keyed_dict(result[1], "value"))
    if len(result) == 4 and result[0] == _REJECTED:
        rejection = Rejected(
            code=check_str(result[1], "code"),
            message=check_str(result[2], "message"),
            details=check_str_keyed_dict(result[3], "details"),
        )
        return key, fingerprint, rejection
    raise ValueError("idempotency result: expected an accepted or rejected record")
