"""Snapshot encoding of the whole state machine, and the digest used to compare replicas.

Capture and encoding are split (``StateCapture``): capturing freezes the state in O(1) on the
event loop, encoding walks the frozen views on the disk thread (see ``raft3d.domain.persistent``
for why this is safe).

The state document lists every object in creation order and every idempotency record in log
order, each in a fixed field order, so equal states encode to equal bytes. Derived data
(reserved weights) is left out and recomputed on restore.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any

import msgpack

from raft3d.domain._checks import check_instance, check_int, check_str, check_str_keyed_dict
from raft3d.domain.errors import SnapshotDecodeError
from raft3d.domain.farm import Farm, FarmView
from raft3d.domain.idempotency import IdempotencyRecord, IdempotencyTable
from raft3d.domain.model import Filament, FilamentType, JobStatus, Printer, PrintJob
from raft3d.domain.persistent import FrozenView
from raft3d.domain.results import Accepted, Rejected, Result, detached

SNAPSHOT_FORMAT = 2
# Format 1 had no outcomes; still read, as a snapshot written by an older node.
_READABLE_FORMATS = (1, 2)

_ACCEPTED = "accepted"
_REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RestoredState:
    last_applied_index: int
    farm: Farm
    idempotency: IdempotencyTable
    outcomes: list[tuple[int, Result]]


@dataclass(frozen=True, slots=True)
class StateCapture:
    """The whole state at one applied index, frozen: taken in O(1), encoded on any thread.

    Besides the replicated state it carries the outcomes of the entries the node still holds
    in its log, so that a node restarting from this snapshot can still report them.
    """

    last_applied_index: int
    farm: FarmView
    idempotency: FrozenView[str, IdempotencyRecord]
    outcomes: FrozenView[int, Result]

    def encode(self) -> bytes:
        """The snapshot bytes (msgpack: strings as UTF-8, never escaped). O(state size)."""
        packer = msgpack.Packer(use_bin_type=True)
        out = bytearray(packer.pack_map_header(4))
        out += packer.pack("format") + packer.pack(SNAPSHOT_FORMAT)
        out += packer.pack("last_applied_index") + packer.pack(self.last_applied_index)
        out += packer.pack("state")
        _pack_state(out, packer, self.farm, self.idempotency)
        out += packer.pack("outcomes") + packer.pack_array_header(len(self.outcomes))
        for index, result in self.outcomes.items():
            out += packer.pack([index, _result_to_wire(result), result.replayed])
        return bytes(out)


def _pack_state(
    out: bytearray,
    packer: msgpack.Packer,
    farm: FarmView,
    idempotency: FrozenView[str, IdempotencyRecord],
) -> None:
    """Append the state document, one object at a time (no second copy of the whole state)."""
    out += packer.pack_map_header(4)
    for name, view in (
        ("printers", farm.printers),
        ("filaments", farm.filaments),
        ("print_jobs", farm.print_jobs),
    ):
        out += packer.pack(name) + packer.pack_array_header(len(view))
        for obj in view.values():
            out += packer.pack(obj.to_dict())
    out += packer.pack("idempotency") + packer.pack_array_header(len(idempotency))
    for key, record in idempotency.items():
        out += packer.pack([key, record.fingerprint, _result_to_wire(record.result)])


def state_digest(farm: Farm, idempotency: IdempotencyTable) -> str:
    out = bytearray()
    _pack_state(out, msgpack.Packer(use_bin_type=True), farm.view(), idempotency.view())
    return hashlib.sha256(out).hexdigest()


def decode_snapshot(data: bytes, idempotency_capacity: int) -> RestoredState:
    """Rebuild a state from ``StateCapture.encode`` bytes.

    An idempotency table over capacity keeps its newest records.
    """
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
        return _state_from_document(document, idempotency_capacity)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise SnapshotDecodeError(f"invalid snapshot: {exc}") from exc


def _state_from_document(document: object, idempotency_capacity: int) -> RestoredState:
    mapping = check_str_keyed_dict(document, "snapshot")
    version = mapping.get("format")
    if type(version) is not int or version not in _READABLE_FORMATS:
        raise ValueError(f"unsupported snapshot format {version!r}")
    names = ("format", "last_applied_index", "state") + (("outcomes",) if version >= 2 else ())
    top = _fields(document, "snapshot", names)
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
    outcomes = [_outcome(item) for item in check_instance(top.get("outcomes", []), list, "o")]
    if any(a[0] >= b[0] for a, b in itertools.pairwise(outcomes)):
        raise ValueError("outcomes: indexes must increase")
    if outcomes and outcomes[-1][0] > index:
        raise ValueError("outcomes: an index beyond the snapshot's")
    return RestoredState(index, farm, table, outcomes)


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


def _outcome(value: object) -> tuple[int, Result]:
    item = check_instance(value, list, "outcome")
    if len(item) != 3 or type(item[2]) is not bool:
        raise ValueError("outcome: expected [index, result, replayed]")
    index = check_int(item[0], "outcome index", minimum=1)
    return index, detached(_result(item[1]), replayed=item[2])


def _record(value: object) -> tuple[str, str, Result]:
    item = check_instance(value, list, "idempotency record")
    if len(item) != 3:
        raise ValueError("idempotency record: expected [key, fingerprint, result]")
    key = check_str(item[0], "idempotency key")
    fingerprint = check_str(item[1], "idempotency fingerprint")
    return key, fingerprint, _result(item[2])


def _result(value: object) -> Result:
    result = check_instance(value, list, "result")
    if len(result) == 2 and result[0] == _ACCEPTED:
        return Accepted(value=check_str_keyed_dict(result[1], "value"))
    if len(result) == 4 and result[0] == _REJECTED:
        return Rejected(
            code=check_str(result[1], "code"),
            message=check_str(result[2], "message"),
            details=check_str_keyed_dict(result[3], "details"),
        )
    raise ValueError("result: expected an accepted or rejected record")
