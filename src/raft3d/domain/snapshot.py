"""Snapshot encoding of the whole state machine, and the digest used to compare replicas.

Capture and encoding are split (``StateCapture``): capturing freezes the state in O(1) on the
event loop, encoding walks the frozen views on another thread (see ``raft3d.domain.persistent``
for why this is safe). The farm's objects are stored as their snapshot bytes
(``raft3d.domain.records``), so encoding them is joining stored bytes, ``_CHUNK`` objects at
a time: each join holds the GIL for well under a millisecond, and a million objects encode
in a fraction of a second instead of seconds of per-object Python work.

Decoding streams: the document is read one object at a time (``msgpack.Unpacker`` over the
bytes), each object checked and re-encoded into the rebuilt farm (``FarmBuilder``), so a
restore never holds a decoded copy of the whole document beside the farm it builds.

The state document lists every object in creation order and every idempotency record in log
order, each in a fixed field order, so equal states encode to equal bytes. Derived data
(reserved weights) is left out and recomputed on restore.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

from raft3d.domain._checks import check_instance, check_int, check_str, check_str_keyed_dict
from raft3d.domain.errors import SnapshotDecodeError
from raft3d.domain.farm import Farm, FarmBuilder, FarmView
from raft3d.domain.idempotency import IdempotencyRecord, IdempotencyTable
from raft3d.domain.model import Filament, FilamentType, JobStatus, Printer, PrintJob
from raft3d.domain.persistent import FrozenView
from raft3d.domain.results import Accepted, Rejected, Result, detached

SNAPSHOT_FORMAT = 2
# Format 1 had no outcomes; still read, as a snapshot written by an older node.
_READABLE_FORMATS = (1, 2)

# Objects joined per piece when encoding: about 110 kB, a fraction of a millisecond.
_CHUNK = 1024
# Idempotency records and outcomes are packed one by one: fewer per piece.
_RESULT_CHUNK = 256
_STATE_FIELDS = ("printers", "filaments", "print_jobs", "idempotency")

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
        # BytesIO grows in place and hands its buffer over: no second copy of the snapshot.
        out = io.BytesIO()
        for part in self.parts():
            out.write(part)
        return out.getvalue()

    def parts(self) -> Iterator[bytes]:
        """``encode()`` in consecutive pieces, each a fraction of a millisecond of work, so a
        caller can spread the encoding over time (the node does, on its event loop)."""
        packer = msgpack.Packer(use_bin_type=True)
        yield packer.pack_map_header(4)
        yield packer.pack("format") + packer.pack(SNAPSHOT_FORMAT)
        yield packer.pack("last_applied_index") + packer.pack(self.last_applied_index)
        yield packer.pack("state")
        yield from _state_parts(packer, self.farm, self.idempotency)
        yield packer.pack("outcomes") + packer.pack_array_header(len(self.outcomes))
        pack = packer.pack
        for items in self.outcomes.item_chunks(_RESULT_CHUNK):
            yield b"".join(
                pack([index, _result_to_wire(result), result.replayed]) for index, result in items
            )


def _state_parts(
    packer: msgpack.Packer, farm: FarmView, idempotency: FrozenView[str, IdempotencyRecord]
) -> Iterator[bytes]:
    """The state document: the objects' stored bytes joined a chunk at a time."""
    yield packer.pack_map_header(4)
    for name, view in (
        ("printers", farm.printers),
        ("filaments", farm.filaments),
        ("print_jobs", farm.print_jobs),
    ):
        yield packer.pack(name) + packer.pack_array_header(len(view))
        for chunk in view.chunks(_CHUNK):
            yield b"".join(chunk)
    yield packer.pack("idempotency") + packer.pack_array_header(len(idempotency))
    pack = packer.pack
    for items in idempotency.item_chunks(_RESULT_CHUNK):
        yield b"".join(
            pack([key, record.fingerprint, _result_to_wire(record.result)]) for key, record in items
        )


def state_digest(farm: Farm, idempotency: IdempotencyTable) -> str:
    digest = hashlib.sha256()
    for part in _state_parts(msgpack.Packer(use_bin_type=True), farm.view(), idempotency.view()):
        digest.update(part)
    return digest.hexdigest()


def decode_snapshot(data: bytes, idempotency_capacity: int) -> RestoredState:
    """Rebuild a state from ``StateCapture.encode`` bytes, one object at a time.

    An idempotency table over capacity keeps its newest records.
    """
    try:
        reader = _Reader(data)
        state = reader.document(idempotency_capacity)
        if reader.unpacker.tell() != len(data):
            raise ValueError("bytes after the end of the snapshot")
        return state
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise SnapshotDecodeError(f"invalid snapshot: {exc}") from exc


class _Reader:
    """Walks a snapshot document in order, never decoding more than one object at a time."""

    def __init__(self, data: bytes) -> None:
        # BytesIO shares ``data``; the unpacker buffers a few kB of it at a time.
        self.unpacker = msgpack.Unpacker(
            io.BytesIO(data), raw=False, strict_map_key=True, use_list=True
        )

    def _key(self, expected: str) -> None:
        key = self.unpacker.unpack()
        if key != expected:
            raise ValueError(f"expected field {expected!r}, got {key!r}")

    def _array(self, name: str) -> int:
        self._key(name)
        try:
            return int(self.unpacker.read_array_header())
        except msgpack.UnpackValueError as exc:
            raise ValueError(f"{name} must be an array") from exc

    def _map(self, what: str, names: tuple[str, ...]) -> None:
        try:
            size = self.unpacker.read_map_header()
        except msgpack.UnpackValueError as exc:
            raise ValueError(f"{what} must be a map with string keys") from exc
        if size != len(names):
            raise ValueError(f"{what}: expected fields {list(names)}, got {size} fields")

    def document(self, idempotency_capacity: int) -> RestoredState:
        unpacker = self.unpacker
        try:
            size = unpacker.read_map_header()
        except msgpack.UnpackValueError as exc:
            raise ValueError("snapshot must be a map with string keys") from exc
        self._key("format")
        version = unpacker.unpack()
        if type(version) is not int or version not in _READABLE_FORMATS:
            raise ValueError(f"unsupported snapshot format {version!r}")
        names: tuple[str, ...] = ("format", "last_applied_index", "state")
        names += ("outcomes",) if version >= 2 else ()
        if size != len(names):
            raise ValueError(f"snapshot: expected fields {list(names)}, got {size} fields")
        self._key("last_applied_index")
        index = check_int(unpacker.unpack(), "last_applied_index", minimum=0)
        self._key("state")
        self._map("state", _STATE_FIELDS)
        builder = FarmBuilder()
        for _ in range(self._array("printers")):
            builder.printer(_printer(unpacker.unpack()))
        for _ in range(self._array("filaments")):
            builder.filament(_filament(unpacker.unpack()))
        for _ in range(self._array("print_jobs")):
            builder.print_job(_print_job(unpacker.unpack()))
        farm = builder.finish()
        count = self._array("idempotency")
        table = IdempotencyTable(idempotency_capacity)
        # The table may have been written by a node with a larger capacity: keep the newest.
        for position in range(count):
            item = unpacker.unpack()
            if position >= count - idempotency_capacity:
                key, fingerprint, result = _record(item)
                table.remember(key, fingerprint, result)
        outcomes: list[tuple[int, Result]] = []
        if version >= 2:
            outcomes = [_outcome(unpacker.unpack()) for _ in range(self._array("outcomes"))]
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
