"""Unit tests of the command codec: every command round-trips, the envelope is versioned,
and malformed bytes or fields are refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft3d.domain import (
    Command,
    CommandDecodeError,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    FilamentType,
    IdempotencyTag,
    InvalidCommandError,
    JobStatus,
    UpdateJobStatus,
    commands,
    decode_command,
    encode_command,
)
from raft3d.domain.commands import parse_command
from tests.support.farms import (
    filament,
    job,
    printer,
    status,
)

# -- command codec ------------------------------------------------------------------------

TAG = IdempotencyTag(key="k-1", fingerprint="sha256:abc")
ALL_COMMANDS: list[Command] = [
    printer(),
    printer(tag=TAG),
    filament(remaining=0),
    CreateFilament("f2", FilamentType.TPU, "clear", 750, 500, idempotency=TAG),
    job(),
    job(tag=TAG),
    status("j1", JobStatus.CANCELLED),
    status("j1", JobStatus.RUNNING, tag=TAG),
]


def _field_types(command: Command) -> list[type]:
    return [type(getattr(command, f.name)) for f in dataclasses.fields(command)]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=repr)
def test_codec_round_trips_every_command(command: Command) -> None:
    data = encode_command(command)
    decoded = parse_command(data)  # the bytes themselves, not the encoder's own copy
    assert decoded == command
    assert type(decoded) is type(command)
    assert _field_types(decoded) == _field_types(command)
    assert encode_command(decoded) == data


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=repr)
def test_a_command_this_process_encoded_is_applied_without_parsing(command: Command) -> None:
    data = encode_command(command)
    assert decode_command(data) is command
    # Once only: a second decode of the same entry (an events listing) parses it.
    again = decode_command(data)
    assert again == command and again is not command


class _Text(str):
    """A str subclass: msgpack gives it back as a plain str."""


def test_a_command_holding_a_str_subclass_is_parsed_back_to_plain_str() -> None:
    command = CreatePrinter(_Text("p9"), "Prusa", "MK4")
    decoded = decode_command(encode_command(command))
    assert decoded == command and decoded is not command
    assert type(decoded.id) is str


def test_the_encoded_commands_kept_are_bounded() -> None:
    first = encode_command(CreatePrinter("bound-0", "Prusa", "MK4"))
    for n in range(1, commands.ENCODED_KEPT + 50):
        encode_command(CreatePrinter(f"bound-{n}", "Prusa", "MK4"))
    assert len(commands._encoded) == commands.ENCODED_KEPT
    assert first not in commands._encoded  # the oldest went first
    assert decode_command(first) == CreatePrinter("bound-0", "Prusa", "MK4")


_texts = st.text(st.characters(codec="utf-8"), max_size=20)  # no lone surrogates


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.builds(CreatePrinter, _texts, _texts, _texts),
        st.builds(CreatePrintJob, _texts, _texts, _texts, _texts, st.integers(1, 2**63 - 1)),
        st.builds(UpdateJobStatus, _texts, st.sampled_from(JobStatus)),
    ),
    st.one_of(st.none(), st.builds(IdempotencyTag, _texts, _texts)),
)
def test_what_is_kept_is_what_parsing_gives_back(
    command: Command, tag: IdempotencyTag | None
) -> None:
    command = dataclasses.replace(command, idempotency=tag)
    data = encode_command(command)
    kept = decode_command(data)
    parsed = parse_command(data)
    assert kept == parsed and type(kept) is type(parsed)
    assert _field_types(kept) == _field_types(parsed)


def test_encoding_is_a_versioned_envelope() -> None:
    envelope = msgpack.unpackb(encode_command(filament()), raw=False)
    assert envelope == {
        "v": 1,
        "type": "create_filament",
        "args": {
            "id": "f1",
            "type": "PLA",
            "color": "red",
            "total_weight_in_grams": 1000,
            "remaining_weight_in_grams": 1000,
        },
        "idempotency": None,
    }
    tagged = msgpack.unpackb(encode_command(printer(tag=TAG)), raw=False)
    assert tagged["type"] == "create_printer"
    assert tagged["idempotency"] == {"key": "k-1", "fingerprint": "sha256:abc"}


def _envelope(**changes: Any) -> dict[str, Any]:
    envelope: dict[str, Any] = msgpack.unpackb(encode_command(job(tag=TAG)), raw=False)
    envelope.update(changes)
    return envelope


def _args(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(_envelope()["args"])
    args.update(changes)
    return args


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


BAD_ENVELOPES: dict[str, object] = {
    "not a map": [1, "create_printer"],
    "version 2": _envelope(v=2),
    "version as bool": _envelope(v=True),
    "version as string": _envelope(v="1"),
    "missing version": _without(_envelope(), "v"),
    "unknown type": _envelope(type="delete_printer"),
    "type not a string": _envelope(type=3),
    "extra envelope field": _envelope(extra=1),
    "missing idempotency field": _without(_envelope(), "idempotency"),
    "args not a map": _envelope(args=["j1"]),
    "missing arg": _envelope(args=_without(_args(), "filepath")),
    "extra arg": _envelope(args=_args(status="Queued")),
    "id as int": _envelope(args=_args(id=7)),
    "id as bytes": _envelope(args=_args(id=b"j1")),
    "weight as bool": _envelope(args=_args(print_weight_in_grams=True)),
    "weight as float": _envelope(args=_args(print_weight_in_grams=10.0)),
    "weight as string": _envelope(args=_args(print_weight_in_grams="10")),
    "weight zero": _envelope(args=_args(print_weight_in_grams=0)),
    "weight negative": _envelope(args=_args(print_weight_in_grams=-5)),
    "weight beyond int64": _envelope(args=_args(print_weight_in_grams=2**63)),
    "filepath nil": _envelope(args=_args(filepath=None)),
    "tag not a map": _envelope(idempotency="k-1"),
    "tag missing fingerprint": _envelope(idempotency={"key": "k-1"}),
    "tag extra field": _envelope(idempotency={"key": "k", "fingerprint": "f", "x": 1}),
    "tag key as int": _envelope(idempotency={"key": 1, "fingerprint": "f"}),
    "filament type not normalised": {
        "v": 1,
        "type": "create_filament",
        "args": {
            "id": "f",
            "type": "pla",
            "color": "red",
            "total_weight_in_grams": 10,
            "remaining_weight_in_grams": 10,
        },
        "idempotency": None,
    },
    "remaining above total": {
        "v": 1,
        "type": "create_filament",
        "args": {
            "id": "f",
            "type": "PLA",
            "color": "red",
            "total_weight_in_grams": 10,
            "remaining_weight_in_grams": 11,
        },
        "idempotency": None,
    },
    "status not a status": {
        "v": 1,
        "type": "update_job_status",
        "args": {"job_id": "j1", "status": "running"},
        "idempotency": None,
    },
}


@pytest.mark.parametrize("envelope", list(BAD_ENVELOPES.values()), ids=list(BAD_ENVELOPES))
def test_decode_refuses_malformed_envelopes(envelope: object) -> None:
    with pytest.raises(CommandDecodeError):
        decode_command(msgpack.packb(envelope, use_bin_type=True))


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", encode_command(printer()) + b"\x00", b"\x81\x01\x02", b"\xd4\x05\x00"],
    ids=["empty", "reserved byte", "trailing bytes", "int map key", "unknown ext type"],
)
def test_decode_refuses_bytes_that_are_not_an_envelope(data: bytes) -> None:
    with pytest.raises(CommandDecodeError):
        decode_command(data)


@pytest.mark.parametrize(
    "build",
    [
        lambda: CreatePrinter(id=1, company="c", model="m"),  # type: ignore[arg-type]
        lambda: CreateFilament("f", "PLA", "red", 10, 10),  # type: ignore[arg-type]
        lambda: CreateFilament("f", FilamentType.PLA, "red", 0, 0),
        lambda: CreateFilament("f", FilamentType.PLA, "red", 10, -1),
        lambda: CreateFilament("f", FilamentType.PLA, "red", 10, 11),
        lambda: job(weight=0),
        lambda: UpdateJobStatus("j1", "Running"),  # type: ignore[arg-type]
        lambda: printer(tag="k"),  # type: ignore[arg-type]
        lambda: IdempotencyTag(key="k", fingerprint=None),  # type: ignore[arg-type]
        lambda: printer("\ud800"),
        lambda: job(weight=2**63),
    ],
    ids=[
        "int id",
        "type as str",
        "zero total",
        "negative remaining",
        "remaining above total",
        "zero weight",
        "status as str",
        "tag as str",
        "fingerprint none",
        "lone surrogate",
        "weight beyond int64",
    ],
)
def test_commands_check_their_fields_when_built(build: Any) -> None:
    with pytest.raises(InvalidCommandError):
        build()
