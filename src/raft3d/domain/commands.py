"""Commands: the entries of the replicated log, and their versioned msgpack envelope.

Wire form (msgpack map, keys in this order)::

    {"v": 1, "type": "create_printer", "args": {...fields...},
     "idempotency": None | {"key": ..., "fingerprint": ...}}

The fields sit under ``args`` so that a field may be called ``type`` (a filament's) without
clashing with the envelope. A new command kind gets a new ``type``; a changed meaning gets a new
``v``. Old entries must stay decodable for as long as a log or snapshot can hold them.

Commands check their own field types and the bounds the state machine relies on (weights are
positive, a roll's remaining weight is within its total) when constructed, so an invalid command
cannot be proposed; presentation limits (id length, empty strings) belong to the HTTP layer.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from raft3d.domain._checks import check_instance, check_int, check_str, check_str_keyed_dict
from raft3d.domain.errors import CommandDecodeError, InvalidCommandError
from raft3d.domain.model import FilamentType, JobStatus

ENVELOPE_VERSION = 1


@dataclass(frozen=True, slots=True)
class IdempotencyTag:
    """A client's idempotency key and the caller's hash of the request it was sent with."""

    key: str
    fingerprint: str

    def __post_init__(self) -> None:
        check_str(self.key, "idempotency.key")
        check_str(self.fingerprint, "idempotency.fingerprint")


def _check_tag(value: object) -> None:
    if value is not None:
        check_instance(value, IdempotencyTag, "idempotency")


@dataclass(frozen=True, slots=True)
class CreatePrinter:
    TYPE: ClassVar[str] = "create_printer"

    id: str
    company: str
    model: str
    idempotency: IdempotencyTag | None = None

    def __post_init__(self) -> None:
        check_str(self.id, "id")
        check_str(self.company, "company")
        check_str(self.model, "model")
        _check_tag(self.idempotency)


@dataclass(frozen=True, slots=True)
class CreateFilament:
    """A new roll; the caller has already normalised it (type upper-case, remaining defaulted)."""

    TYPE: ClassVar[str] = "create_filament"

    id: str
    type: FilamentType
    color: str
    total_weight_in_grams: int
    remaining_weight_in_grams: int
    idempotency: IdempotencyTag | None = None

    def __post_init__(self) -> None:
        check_str(self.id, "id")
        check_instance(self.type, FilamentType, "type")
        check_str(self.color, "color")
        total = check_int(self.total_weight_in_grams, "total_weight_in_grams", minimum=1)
        check_int(
            self.remaining_weight_in_grams, "remaining_weight_in_grams", minimum=0, maximum=total
        )
        _check_tag(self.idempotency)


@dataclass(frozen=True, slots=True)
class CreatePrintJob:
    TYPE: ClassVar[str] = "create_print_job"

    id: str
    printer_id: str
    filament_id: str
    filepath: str
    print_weight_in_grams: int
    idempotency: IdempotencyTag | None = None

    def __post_init__(self) -> None:
        check_str(self.id, "id")
        check_str(self.printer_id, "printer_id")
        check_str(self.filament_id, "filament_id")
        check_str(self.filepath, "filepath")
        check_int(self.print_weight_in_grams, "print_weight_in_grams", minimum=1)
        _check_tag(self.idempotency)


@dataclass(frozen=True, slots=True)
class UpdateJobStatus:
    TYPE: ClassVar[str] = "update_job_status"

    job_id: str
    status: JobStatus
    idempotency: IdempotencyTag | None = None

    def __post_init__(self) -> None:
        check_str(self.job_id, "job_id")
        check_instance(self.status, JobStatus, "status")
        _check_tag(self.idempotency)


Command = CreatePrinter | CreateFilament | CreatePrintJob | UpdateJobStatus

_COMMAND_CLASSES: dict[str, type[Command]] = {
    cls.TYPE: cls for cls in (CreatePrinter, CreateFilament, CreatePrintJob, UpdateJobStatus)
}
# Fields carried as their enum's string value on the wire (names are unique across commands).
_ENUM_FIELDS: dict[str, type[FilamentType] | type[JobStatus]] = {
    "type": FilamentType,
    "status": JobStatus,
}
_ENVELOPE_KEYS = frozenset({"v", "type", "args", "idempotency"})
_TAG_KEYS = frozenset({"key", "fingerprint"})


_ARGUMENT_NAMES: dict[type[Command], tuple[str, ...]] = {
    cls: tuple(field.name for field in dataclasses.fields(cls) if field.name != "idempotency")
    for cls in _COMMAND_CLASSES.values()
}


def _argument_names(cls: type[Command]) -> tuple[str, ...]:
    return _ARGUMENT_NAMES[cls]


def command_arguments(cmd: Command) -> dict[str, Any]:
    """The command's arguments as plain data (enums as their values), without its tag."""
    args: dict[str, Any] = {}
    for name in _argument_names(type(cmd)):
        value = getattr(cmd, name)
        args[name] = value.value if name in _ENUM_FIELDS else value
    return args


# Commands this process encoded, by their bytes, until the entry holding them is applied
# here: a node applies the commands it proposed (or forwarded) without parsing them back.
# Only commands whose decoding is known to give back an equal command of the same types
# (``_round_trips``) are kept; at most ENCODED_KEPT, the oldest let go first (a proposal
# that never commits, or a front that never applies).
ENCODED_KEPT = 4096
_encoded: OrderedDict[bytes, Command] = OrderedDict()  # each step one call, safe in threads


def encode_command(cmd: Command) -> bytes:
    """Canonical bytes for ``cmd``: equal commands always encode to equal bytes."""
    tag = cmd.idempotency
    envelope = {
        "v": ENVELOPE_VERSION,
        "type": cmd.TYPE,
        "args": command_arguments(cmd),
        "idempotency": None if tag is None else {"key": tag.key, "fingerprint": tag.fingerprint},
    }
    data: bytes = msgpack.packb(envelope, use_bin_type=True)
    if _round_trips(cmd):
        _encoded[data] = cmd
        if len(_encoded) > ENCODED_KEPT:
            with suppress(KeyError):  # another thread emptied it meanwhile
                _encoded.popitem(last=False)
    return data


def _round_trips(cmd: Command) -> bool:
    """Whether ``decode_command(encode_command(cmd))`` equals ``cmd`` value for value and
    type for type: msgpack gives back exact ``str`` and ``int`` (``check_int`` admits no
    other), and the enum fields decode to the same members; a ``str`` subclass would come
    back as a plain ``str``, so a command holding one is decoded like any other entry."""
    if type(cmd) not in _ARGUMENT_NAMES:
        return False
    for name in _ARGUMENT_NAMES[type(cmd)]:
        if name not in _ENUM_FIELDS and type(getattr(cmd, name)) not in (str, int):
            return False
    tag = cmd.idempotency
    return tag is None or (
        type(tag) is IdempotencyTag and type(tag.key) is str and type(tag.fingerprint) is str
    )


def decode_command(data: bytes) -> Command:
    """Parse an entry written by ``encode_command``; anything else raises CommandDecodeError."""
    known = _encoded.pop(data, None)
    if known is not None:
        return known
    return parse_command(data)


def parse_command(data: bytes) -> Command:
    """``decode_command`` without looking at the commands this process encoded."""
    try:
        envelope = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CommandDecodeError(f"not a msgpack command: {exc}") from exc
    try:
        return _command_from_envelope(envelope)
    except InvalidCommandError as exc:
        raise CommandDecodeError(str(exc)) from exc


def _command_from_envelope(envelope: object) -> Command:
    envelope = check_str_keyed_dict(envelope, "envelope")
    _require_keys(envelope, _ENVELOPE_KEYS, "envelope")
    version = envelope["v"]
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise InvalidCommandError(f"unsupported command version {version!r}")
    kind = envelope["type"]
    cls = _COMMAND_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidCommandError(f"unknown command type {kind!r}")
    names = _argument_names(cls)
    args = check_str_keyed_dict(envelope["args"], "args")
    _require_keys(args, frozenset(names), f"{kind} args")
    values: dict[str, Any] = {name: _decode_argument(name, args[name]) for name in names}
    return cls(**values, idempotency=_decode_tag(envelope["idempotency"]))


def _decode_argument(name: str, value: object) -> object:
    enum_class = _ENUM_FIELDS.get(name)
    if enum_class is None:
        return value
    try:
        return enum_class(check_str(value, name))
    except ValueError as exc:
        raise InvalidCommandError(f"{name}: unknown value {value!r}") from exc


def _decode_tag(value: object) -> IdempotencyTag | None:
    if value is None:
        return None
    tag = check_str_keyed_dict(value, "idempotency")
    _require_keys(tag, _TAG_KEYS, "idempotency")
    return IdempotencyTag(key=tag["key"], fingerprint=tag["fingerprint"])


def _require_keys(mapping: dict[str, Any], expected: frozenset[str], what: str) -> None:
    if mapping.keys() != expected:
        missing = sorted(expected - mapping.keys())
        extra = sorted(mapping.keys() - expected)
        raise InvalidCommandError(f"{what}: missing fields {missing}, unexpected fields {extra}")
