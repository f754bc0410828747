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
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from raft3d.domain._checks import (
    INT64_MAX,
    check_instance,
    check_int,
    check_str,
    check_str_keyed_dict,
)
from raft3d.domain.errors import SnapshotDecodeError
from raft3d.domain.farm import Farm, FarmBuilder, FarmView
from raft3d.domain.idempotency import IdempotencyRecord, IdempotencyTable
from raft3d.domain.model import FilamentType, JobStatus
from raft3d.domain.persistent import FrozenView, IndexedView
from raft3d.domain.results import Accepted, Rejected, Result, detached

SNAPSHOT_FORMAT = 2
# Format 1 had no outcomes; still read, as a snapshot written by an older node.
_READABLE_FORMATS = (1, 2)

# Objects joined per piece when encoding: about 110 kB, a fraction of a millisecond.
_CHUNK = 1024
# Idempotency records and outcomes are packed one by one: fewer per piece.
_RESULT_CHUNK = 256
# Objects or records decoded between two yields of ``snapshot_restorer``: well under 1 ms.
RESTORE_STEP = 64
_pack = msgpack.Packer(use_bin_type=True).pack
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
    outcomes: IndexedView[Result]

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
    steps = snapshot_restorer(data, idempotency_capacity)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


class ByteRanges(Protocol):
    """Bytes read by range: ``bytes``, or a file read chunk by chunk (a node restoring its
    own snapshot reads it from the file rather than hold it in memory beside the state)."""

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice, /) -> bytes: ...


class _RangeReader(io.RawIOBase):
    """A ``ByteRanges`` as a readable stream, for the unpacker."""

    def __init__(self, data: ByteRanges) -> None:
        self._data, self._position = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._position : self._position + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)


def snapshot_restorer(
    data: ByteRanges, idempotency_capacity: int
) -> Generator[None, None, RestoredState]:
    """``decode_snapshot`` in steps: yields every ``RESTORE_STEP`` objects or records (a
    fraction of a millisecond of work), returns the state. Closing it early builds nothing
    anyone sees: the state exists only once it is returned."""
    try:
        reader = _Reader(data)
        state = yield from reader.document(idempotency_capacity)
        if reader.unpacker.tell() != len(data):
            raise ValueError("bytes after the end of the snapshot")
        return state
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise SnapshotDecodeError(f"invalid snapshot: {exc}") from exc


class _Reader:
    """Walks a snapshot document in order, never decoding more than one object at a time."""

    def __init__(self, data: ByteRanges) -> None:
        # BytesIO shares ``data``; the unpacker buffers a few kB of it at a time.
        stream = io.BytesIO(data) if isinstance(data, bytes) else _RangeReader(data)
        self.unpacker = msgpack.Unpacker(stream, raw=False, strict_map_key=True, use_list=True)

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

    def document(self, idempotency_capacity: int) -> Generator[None, None, RestoredState]:
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
        unpack = unpacker.unpack
        for kind, add in (
            ("printers", _printer_into(builder)),
            ("filaments", _filament_into(builder)),
            ("print_jobs", _print_job_into(builder)),
        ):
            count = self._array(kind)
            for done in range(0, count, RESTORE_STEP):
                for _ in range(min(RESTORE_STEP, count - done)):
                    add(unpack())
                yield
        farm = builder.finish()
        count = self._array("idempotency")
        table = IdempotencyTable(idempotency_capacity)
        # The table may have been written by a node with a larger capacity: keep the newest.
        for position in range(count):
            item = unpack()
            if position >= count - idempotency_capacity:
                key, fingerprint, result = _record(item)
                table.remember(key, fingerprint, result)
            if position % RESTORE_STEP == RESTORE_STEP - 1:
                yield
        outcomes: list[tuple[int, Result]] = []
        if version >= 2:
            for position in range(self._array("outcomes")):
                outcomes.append(_outcome(unpack()))
                if position % RESTORE_STEP == RESTORE_STEP - 1:
                    yield
        if any(a[0] >= b[0] for a, b in itertools.pairwise(outcomes)):
            raise ValueError("outcomes: indexes must increase")
        if outcomes and outcomes[-1][0] > index:
            raise ValueError("outcomes: an index beyond the snapshot's")
        return RestoredState(index, farm, table, outcomes)


# Each object is checked as the decoded map it is (field names and order, field types and
# ranges: exactly what ``encode_record`` of a valid object produces) and stored as that map
# re-packed, without building the object: about a third of the per-object cost it was.

_PRINTER_FIELDS = ("id", "company", "model")
_FILAMENT_FIELDS = ("id", "type", "color", "total_weight_in_grams", "remaining_weight_in_grams")
_JOB_FIELDS = ("id", "printer_id", "filament_id", "filepath", "print_weight_in_grams", "status")
_FILAMENT_TYPES = frozenset(t.value for t in FilamentType)
_RESERVING = {s.value: s.reserves_filament for s in JobStatus}


def _checked(value: object, what: str, names: tuple[str, ...]) -> dict[str, Any]:
    if type(value) is not dict or tuple(value) != names:
        fields = list(value) if isinstance(value, dict) else type(value).__name__
        raise ValueError(f"{what}: expected fields {list(names)}, got {fields}")
    return value


def _strings(what: str, *values: object) -> None:
    # Strings decoded from msgpack are valid UTF-8 already (the unpacker checks).
    for value in values:
        if type(value) is not str:
            raise ValueError(f"{what}: expected a string, got {type(value).__name__}")


def _integer(value: object, what: str, minimum: int) -> int:
    if type(value) is not int or not minimum <= value <= INT64_MAX:
        raise ValueError(f"{what} must be an integer in [{minimum}, {INT64_MAX}], got {value!r}")
    return value


def _printer_into(builder: FarmBuilder) -> Callable[[object], None]:
    add, pack = builder.add_printer, _pack

    def printer(value: object) -> None:
        key, company, model = _checked(value, "printer", _PRINTER_FIELDS).values()
        _strings("printer", key, company, model)
        add(key, pack(value))

    return printer


def _filament_into(builder: FarmBuilder) -> Callable[[object], None]:
    add, pack = builder.add_filament, _pack

    def filament(value: object) -> None:
        fields = _checked(value, "filament", _FILAMENT_FIELDS)
        key, kind, color, total, remaining = fields.values()
        _strings("filament", key, kind, color)
        if kind not in _FILAMENT_TYPES:
            raise ValueError(f"filament {key!r}: unknown type {kind!r}")
        total = _integer(total, "filament total weight", 1)
        add(key, pack(fields), total, _integer(remaining, "filament remaining weight", 0))

    return filament


def _print_job_into(builder: FarmBuilder) -> Callable[[object], None]:
    add, pack = builder.add_print_job, _pack

    def print_job(value: object) -> None:
        fields = _checked(value, "print job", _JOB_FIELDS)
        key, printer_id, filament_id, filepath, weight, status = fields.values()
        _strings("print job", key, printer_id, filament_id, filepath, status)
        reserves = _RESERVING.get(status)
        if reserves is None:
            raise ValueError(f"print job {key!r}: unknown status {status!r}")
        weight = _integer(weight, "print job weight", 1)
        add(key, pack(fields), printer_id, filament_id, weight if reserves else 0)

    return print_job


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
