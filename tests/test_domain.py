"""Unit tests of the print-farm state machine: one or more per rule, code and guarantee."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft3d.domain import (
    ALLOWED_TRANSITIONS,
    Accepted,
    Command,
    CommandDecodeError,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    FarmStateMachine,
    Filament,
    FilamentType,
    IdempotencyTag,
    InvalidCommandError,
    JobStatus,
    Printer,
    PrintJob,
    Rejected,
    Result,
    SnapshotDecodeError,
    UpdateJobStatus,
    commands,
    decode_command,
    encode_command,
)
from raft3d.domain.commands import parse_command

# -- helpers ------------------------------------------------------------------------------


def apply(machine: FarmStateMachine, command: Command) -> Result:
    """Apply ``command`` as the next log entry."""
    return machine.apply(machine.last_applied_index + 1, encode_command(command))


def accepted(result: Result) -> dict[str, Any]:
    assert isinstance(result, Accepted), result
    return result.value


def rejected_code(result: Result) -> str:
    assert isinstance(result, Rejected), result
    return result.code


def printer(pid: str = "p1", tag: IdempotencyTag | None = None) -> CreatePrinter:
    return CreatePrinter(id=pid, company="Creality", model="Ender 3", idempotency=tag)


def filament(fid: str = "f1", total: int = 1000, remaining: int | None = None) -> CreateFilament:
    return CreateFilament(
        id=fid,
        type=FilamentType.PLA,
        color="red",
        total_weight_in_grams=total,
        remaining_weight_in_grams=total if remaining is None else remaining,
    )


def job(
    jid: str = "j1",
    weight: int = 100,
    printer_id: str = "p1",
    filament_id: str = "f1",
    tag: IdempotencyTag | None = None,
) -> CreatePrintJob:
    return CreatePrintJob(
        id=jid,
        printer_id=printer_id,
        filament_id=filament_id,
        filepath=f"prints/{jid}.gcode",
        print_weight_in_grams=weight,
        idempotency=tag,
    )


def status(jid: str, target: JobStatus, tag: IdempotencyTag | None = None) -> UpdateJobStatus:
    return UpdateJobStatus(job_id=jid, status=target, idempotency=tag)


def remaining(machine: FarmStateMachine, fid: str = "f1") -> int:
    (roll,) = [f for f in machine.filaments() if f.id == fid]
    return roll.remaining_weight_in_grams


def farm(total: int = 1000) -> FarmStateMachine:
    """A machine holding printer p1 and a full filament roll f1."""
    machine = FarmStateMachine()
    accepted(apply(machine, printer()))
    accepted(apply(machine, filament(total=total)))
    return machine


# Legal paths from a new (Queued) job to each status.
PATH_TO: dict[JobStatus, list[JobStatus]] = {
    JobStatus.QUEUED: [],
    JobStatus.RUNNING: [JobStatus.RUNNING],
    JobStatus.DONE: [JobStatus.RUNNING, JobStatus.DONE],
    JobStatus.CANCELLED: [JobStatus.CANCELLED],
}


def job_in(machine: FarmStateMachine, jid: str, target: JobStatus, weight: int = 100) -> None:
    accepted(apply(machine, job(jid, weight)))
    for step in PATH_TO[target]:
        accepted(apply(machine, status(jid, step)))


# -- objects ------------------------------------------------------------------------------


def test_to_dict_has_exactly_the_spec_fields_with_plain_string_enums() -> None:
    assert Printer("p", "c", "m").to_dict() == {"id": "p", "company": "c", "model": "m"}
    roll = Filament("f", FilamentType.PETG, "blue", 1000, 900).to_dict()
    assert list(roll) == [
        "id",
        "type",
        "color",
        "total_weight_in_grams",
        "remaining_weight_in_grams",
    ]
    assert roll["type"] == "PETG" and type(roll["type"]) is str
    print_job = PrintJob("j", "p", "f", "a.gcode", 5, JobStatus.RUNNING).to_dict()
    assert list(print_job) == [
        "id",
        "printer_id",
        "filament_id",
        "filepath",
        "print_weight_in_grams",
        "status",
    ]
    assert print_job["status"] == "Running" and type(print_job["status"]) is str


def test_created_objects_are_returned_as_dicts() -> None:
    machine = FarmStateMachine()
    assert accepted(apply(machine, printer())) == {
        "id": "p1",
        "company": "Creality",
        "model": "Ender 3",
    }
    assert accepted(apply(machine, filament(total=1000, remaining=750))) == {
        "id": "f1",
        "type": "PLA",
        "color": "red",
        "total_weight_in_grams": 1000,
        "remaining_weight_in_grams": 750,
    }
    assert accepted(apply(machine, job("j1", 40))) == {
        "id": "j1",
        "printer_id": "p1",
        "filament_id": "f1",
        "filepath": "prints/j1.gcode",
        "print_weight_in_grams": 40,
        "status": "Queued",
    }
    assert machine.print_job("j1") == PrintJob(
        "j1", "p1", "f1", "prints/j1.gcode", 40, JobStatus.QUEUED
    )
    assert machine.print_job("nope") is None


# -- rule 1: duplicate ids ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["printer", "filament", "print_job"])
def test_duplicate_id_is_refused_and_changes_nothing(kind: str) -> None:
    machine = farm()
    accepted(apply(machine, job("j1")))
    duplicates: dict[str, CreatePrinter | CreateFilament | CreatePrintJob] = {
        "printer": CreatePrinter(id="p1", company="Prusa", model="MK4"),
        "filament": filament("f1", total=5),
        "print_job": job("j1", weight=1),
    }
    duplicate = duplicates[kind]
    before = machine.digest()

    result = apply(machine, duplicate)

    assert rejected_code(result) == "duplicate_id"
    assert isinstance(result, Rejected) and result.details == {"kind": kind, "id": duplicate.id}
    assert machine.digest() == before
    assert machine.printers() == [Printer("p1", "Creality", "Ender 3")]
    assert len(machine.filaments()) == 1 and remaining(machine) == 1000
    assert [j.print_weight_in_grams for j in machine.print_jobs()] == [100]


def test_ids_are_unique_per_kind_only() -> None:
    machine = FarmStateMachine()
    accepted(apply(machine, printer("x")))
    accepted(apply(machine, filament("x")))
    accepted(apply(machine, job("x", printer_id="x", filament_id="x")))


# -- references ---------------------------------------------------------------------------


def test_job_on_unknown_printer_is_refused() -> None:
    machine = farm()
    before = machine.digest()
    result = apply(machine, job(printer_id="ghost"))
    assert rejected_code(result) == "unknown_printer"
    assert isinstance(result, Rejected) and result.details == {"printer_id": "ghost"}
    assert machine.digest() == before


def test_job_on_unknown_filament_is_refused() -> None:
    machine = farm()
    before = machine.digest()
    result = apply(machine, job(filament_id="ghost"))
    assert rejected_code(result) == "unknown_filament"
    assert isinstance(result, Rejected) and result.details == {"filament_id": "ghost"}
    assert machine.digest() == before


def test_status_update_of_unknown_job_is_refused() -> None:
    machine = farm()
    before = machine.digest()
    result = apply(machine, status("ghost", JobStatus.RUNNING))
    assert rejected_code(result) == "job_not_found"
    assert isinstance(result, Rejected) and result.details == {"job_id": "ghost"}
    assert machine.digest() == before


# -- rule 2: filament reservations --------------------------------------------------------


def test_job_may_use_exactly_the_available_weight_but_not_more() -> None:
    machine = farm(total=300)
    accepted(apply(machine, job("j1", 200)))
    before = machine.digest()

    result = apply(machine, job("j2", 101))

    assert rejected_code(result) == "insufficient_filament"
    assert isinstance(result, Rejected)
    assert result.details == {"filament_id": "f1", "requested": 101, "available": 100}
    assert machine.digest() == before
    accepted(apply(machine, job("j3", 100)))
    assert machine.reserved_grams("f1") == 300


def test_available_weight_starts_from_remaining_not_total() -> None:
    machine = FarmStateMachine()
    accepted(apply(machine, printer()))
    accepted(apply(machine, filament(total=1000, remaining=50)))
    assert rejected_code(apply(machine, job("j1", 51))) == "insufficient_filament"
    accepted(apply(machine, job("j1", 50)))


@pytest.mark.parametrize(
    ("held", "still_reserved"),
    [
        (JobStatus.QUEUED, True),
        (JobStatus.RUNNING, True),
        (JobStatus.DONE, False),
        (JobStatus.CANCELLED, False),
    ],
)
def test_only_queued_and_running_jobs_reserve_filament(
    held: JobStatus, still_reserved: bool
) -> None:
    machine = farm(total=100)
    job_in(machine, "j1", held, weight=60)
    # Done consumed 60 g of the roll; Cancelled gave everything back.
    free = {
        JobStatus.QUEUED: 40,
        JobStatus.RUNNING: 40,
        JobStatus.DONE: 40,
        JobStatus.CANCELLED: 100,
    }[held]
    assert machine.reserved_grams("f1") == (60 if still_reserved else 0)

    assert rejected_code(apply(machine, job("big", free + 1))) == "insufficient_filament"
    accepted(apply(machine, job("fits", free)))


def test_jobs_on_other_filaments_do_not_count() -> None:
    machine = farm(total=100)
    accepted(apply(machine, filament("f2", total=100)))
    accepted(apply(machine, job("on_f2", 100, filament_id="f2")))
    assert machine.reserved_grams("f2") == 100
    assert machine.reserved_grams("f1") == 0
    accepted(apply(machine, job("on_f1", 100, filament_id="f1")))


def test_reserved_grams_of_unknown_filament_is_zero() -> None:
    assert FarmStateMachine().reserved_grams("nope") == 0


# -- rules 3 and 4: transitions -----------------------------------------------------------

EXPECTED_TRANSITIONS = {
    (JobStatus.QUEUED, JobStatus.RUNNING),
    (JobStatus.RUNNING, JobStatus.DONE),
    (JobStatus.QUEUED, JobStatus.CANCELLED),
    (JobStatus.RUNNING, JobStatus.CANCELLED),
}


def test_allowed_transitions_table_is_exactly_the_spec() -> None:
    table = {(src, dst) for src, targets in ALLOWED_TRANSITIONS.items() for dst in targets}
    assert table == EXPECTED_TRANSITIONS
    assert set(ALLOWED_TRANSITIONS) == set(JobStatus)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(JobStatus, JobStatus)))
def test_every_transition_is_accepted_exactly_when_the_table_allows_it(
    source: JobStatus, target: JobStatus
) -> None:
    machine = farm()
    job_in(machine, "j1", source)
    before = machine.digest()

    result = apply(machine, status("j1", target))

    if (source, target) in EXPECTED_TRANSITIONS:
        assert accepted(result)["status"] == target.value
        current = machine.print_job("j1")
        assert current is not None and current.status is target
    else:
        assert rejected_code(result) == "illegal_transition"
        assert isinstance(result, Rejected)
        assert result.details == {"from": source.value, "to": target.value}
        assert machine.digest() == before


def test_done_reduces_remaining_by_the_job_weight() -> None:
    machine = farm(total=1000)
    job_in(machine, "j1", JobStatus.RUNNING, weight=120)
    assert remaining(machine) == 1000

    result = apply(machine, status("j1", JobStatus.DONE))

    assert accepted(result)["status"] == "Done"
    assert remaining(machine) == 880
    assert machine.reserved_grams("f1") == 0
    assert machine.filaments()[0].total_weight_in_grams == 1000


def test_cancelling_a_running_job_keeps_the_filament() -> None:
    machine = farm(total=1000)
    job_in(machine, "j1", JobStatus.RUNNING, weight=120)
    accepted(apply(machine, status("j1", JobStatus.CANCELLED)))
    assert remaining(machine) == 1000
    assert machine.reserved_grams("f1") == 0


def test_a_roll_can_be_used_up_exactly() -> None:
    machine = farm(total=100)
    job_in(machine, "j1", JobStatus.DONE, weight=100)
    assert remaining(machine) == 0
    assert rejected_code(apply(machine, job("j2", 1))) == "insufficient_filament"


# -- ordering and queries -----------------------------------------------------------------


def test_lists_are_in_creation_order_and_updates_keep_position() -> None:
    machine = FarmStateMachine()
    for pid in ["z", "a", "m"]:
        accepted(apply(machine, printer(pid)))
    for fid in ["f9", "f1", "f5"]:
        accepted(apply(machine, filament(fid)))
    for jid in ["j3", "j1", "j2"]:
        accepted(apply(machine, job(jid, 10, printer_id="a", filament_id="f5")))
    accepted(apply(machine, status("j1", JobStatus.RUNNING)))
    accepted(apply(machine, status("j1", JobStatus.DONE)))  # replaces f5 in place too

    assert [p.id for p in machine.printers()] == ["z", "a", "m"]
    assert [f.id for f in machine.filaments()] == ["f9", "f1", "f5"]
    assert [j.id for j in machine.print_jobs()] == ["j3", "j1", "j2"]
    assert [j.id for j in machine.print_jobs(JobStatus.QUEUED)] == ["j3", "j2"]
    assert [j.id for j in machine.print_jobs(JobStatus.DONE)] == ["j1"]
    assert machine.print_jobs(JobStatus.CANCELLED) == []


# -- apply and the log --------------------------------------------------------------------


def test_apply_records_the_index_and_allows_gaps() -> None:
    machine = FarmStateMachine()
    assert machine.last_applied_index == 0
    machine.apply(3, encode_command(printer("a")))
    machine.apply(7, encode_command(printer("b")))
    assert machine.last_applied_index == 7


@pytest.mark.parametrize("index", [6, 7])
def test_apply_refuses_an_index_that_is_not_new(index: int) -> None:
    machine = FarmStateMachine()
    machine.apply(7, encode_command(printer("a")))
    before = machine.digest()
    with pytest.raises(ValueError, match="not after"):
        machine.apply(index, encode_command(printer("b")))
    assert machine.digest() == before and machine.last_applied_index == 7


def test_undecodable_entry_raises_and_changes_nothing() -> None:
    machine = farm()
    before = machine.digest()
    with pytest.raises(CommandDecodeError):
        machine.apply(10, b"\x93garbage")
    assert machine.digest() == before
    assert machine.last_applied_index == 2


def test_results_do_not_share_state_with_the_machine() -> None:
    machine = farm()
    result = apply(machine, job("j1", 100))
    accepted(result)["status"] = "Done"
    assert isinstance(result, Accepted)
    current = machine.print_job("j1")
    assert current is not None and current.status is JobStatus.QUEUED


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


# -- idempotency --------------------------------------------------------------------------


def tag(key: str, fingerprint: str = "fp") -> IdempotencyTag:
    return IdempotencyTag(key=key, fingerprint=fingerprint)


def test_retry_replays_the_original_result_and_changes_nothing() -> None:
    machine = farm()
    first = apply(machine, job("j1", 100, tag=tag("k1")))
    accepted(apply(machine, status("j1", JobStatus.RUNNING)))
    before = machine.digest()

    retry = apply(machine, job("j1", 100, tag=tag("k1")))

    assert isinstance(first, Accepted) and not first.replayed
    assert retry == Accepted(first.value, replayed=True)
    assert accepted(retry)["status"] == "Queued"  # as first returned, not as the job is now
    assert machine.digest() == before
    assert len(machine.print_jobs()) == 1


def test_a_refused_result_is_remembered_and_replayed() -> None:
    machine = farm()
    first = apply(machine, job("j1", 100, printer_id="p2", tag=tag("k1")))
    assert rejected_code(first) == "unknown_printer"
    accepted(apply(machine, printer("p2")))  # the retry would now succeed if re-executed

    retry = apply(machine, job("j1", 100, printer_id="p2", tag=tag("k1")))

    assert isinstance(first, Rejected)
    assert retry == Rejected(first.code, first.message, first.details, replayed=True)
    assert machine.print_jobs() == []


def test_a_reused_key_with_another_request_is_refused_and_not_recorded() -> None:
    machine = farm()
    first = apply(machine, printer("p2", tag=tag("k1", "fp-a")))
    before = machine.digest()

    reused = apply(machine, printer("p3", tag=tag("k1", "fp-b")))

    assert rejected_code(reused) == "idempotency_key_reused"
    assert isinstance(reused, Rejected) and reused.details == {"key": "k1"}
    assert machine.digest() == before
    assert [p.id for p in machine.printers()] == ["p1", "p2"]
    # The key still answers for its first request.
    assert apply(machine, printer("p2", tag=tag("k1", "fp-a"))) == Accepted(
        accepted(first), replayed=True
    )


def test_commands_without_a_key_are_not_deduplicated() -> None:
    machine = farm()
    accepted(apply(machine, printer("p2")))
    assert rejected_code(apply(machine, printer("p2"))) == "duplicate_id"


def test_replayed_results_are_copies() -> None:
    machine = farm()
    first = apply(machine, printer("p2", tag=tag("k1")))
    accepted(first)["model"] = "changed by the caller"
    retry = apply(machine, printer("p2", tag=tag("k1")))
    accepted(retry)["model"] = "changed again"
    assert accepted(apply(machine, printer("p2", tag=tag("k1"))))["model"] == "Ender 3"


def _is_remembered(machine: FarmStateMachine, key: str, pid: str) -> bool:
    """Whether ``key`` still replays (probing with its own request changes nothing then)."""
    result = apply(machine, printer(pid, tag=tag(key)))
    return result.replayed


def test_oldest_keys_are_evicted_in_log_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 3)
    machine = FarmStateMachine()
    for n in range(1, 5):
        accepted(apply(machine, printer(f"p{n}", tag=tag(f"k{n}"))))

    # k1 fell out: the same request runs again (and now hits the duplicate id).
    assert rejected_code(apply(machine, printer("p1", tag=tag("k1")))) == "duplicate_id"
    # That re-run recorded k1 anew, evicting k2, the oldest.
    assert not _is_remembered(machine, "k2", "p2")  # re-records k2, evicting k3
    assert _is_remembered(machine, "k4", "p4")
    assert _is_remembered(machine, "k1", "p1")
    assert _is_remembered(machine, "k2", "p2")
    assert not _is_remembered(machine, "k3", "p3")


def test_a_replay_does_not_refresh_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 2)
    machine = FarmStateMachine()
    accepted(apply(machine, printer("p1", tag=tag("k1"))))
    accepted(apply(machine, printer("p2", tag=tag("k2"))))
    assert _is_remembered(machine, "k1", "p1")  # replay, k1 stays the oldest
    accepted(apply(machine, printer("p3", tag=tag("k3"))))  # evicts k1, not k2
    assert _is_remembered(machine, "k2", "p2")
    assert not _is_remembered(machine, "k1", "p1")


def test_a_reused_key_rejection_does_not_evict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 2)
    machine = FarmStateMachine()
    accepted(apply(machine, printer("p1", tag=tag("k1"))))
    accepted(apply(machine, printer("p2", tag=tag("k2"))))
    assert rejected_code(apply(machine, printer("x", tag=tag("k2", "other")))) == (
        "idempotency_key_reused"
    )
    assert _is_remembered(machine, "k1", "p1")
    assert _is_remembered(machine, "k2", "p2")


def test_snapshot_keeps_the_idempotency_table_and_its_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 3)
    original = FarmStateMachine()
    accepted(apply(original, printer("p1", tag=tag("k1"))))
    accepted(apply(original, printer("p2", tag=tag("k2"))))
    assert rejected_code(apply(original, printer("p1", tag=tag("k3")))) == "duplicate_id"
    copy = FarmStateMachine()
    copy.restore(original.snapshot())
    assert copy.digest() == original.digest()

    follow_up: list[Command] = [
        printer("p2", tag=tag("k2")),  # replay of an accepted result
        printer("p1", tag=tag("k3")),  # replay of a refused result
        printer("zz", tag=tag("k1", "other")),  # key reused
        printer("p4", tag=tag("k4")),  # new key: evicts k1 on both
        printer("p1", tag=tag("k1")),  # k1 gone: runs again on both
    ]
    for command in follow_up:
        assert apply(copy, command) == apply(original, command)
        assert copy.digest() == original.digest()
    assert _is_remembered(copy, "k2", "p2") is False  # evicted by k1's re-run


def test_restoring_a_bigger_table_keeps_its_newest_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    source = FarmStateMachine()
    for n in range(1, 5):
        accepted(apply(source, printer(f"p{n}", tag=tag(f"k{n}"))))
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 2)
    small = FarmStateMachine()
    small.restore(source.snapshot())
    assert _is_remembered(small, "k4", "p4")
    assert _is_remembered(small, "k3", "p3")
    assert not _is_remembered(small, "k2", "p2")


# -- snapshot, restore, digest ------------------------------------------------------------


def busy_farm() -> FarmStateMachine:
    machine = farm(total=500)
    accepted(apply(machine, filament("f2", total=300, remaining=200)))
    job_in(machine, "queued", JobStatus.QUEUED, weight=50)
    job_in(machine, "running", JobStatus.RUNNING, weight=70)
    job_in(machine, "done", JobStatus.DONE, weight=30)
    job_in(machine, "cancelled", JobStatus.CANCELLED, weight=90)
    apply(machine, job("t", 10, filament_id="f2", tag=tag("k1")))
    apply(machine, job("bad", 10, filament_id="nope", tag=tag("k2")))
    return machine


def test_snapshot_restore_round_trips_exactly() -> None:
    original = busy_farm()
    copy = FarmStateMachine()
    copy.restore(original.snapshot())

    assert copy.digest() == original.digest()
    assert copy.snapshot() == original.snapshot()
    assert copy.last_applied_index == original.last_applied_index
    assert copy.printers() == original.printers()
    assert copy.filaments() == original.filaments()
    assert copy.print_jobs() == original.print_jobs()
    assert copy.reserved_grams("f1") == original.reserved_grams("f1") == 120
    assert copy.reserved_grams("f2") == original.reserved_grams("f2") == 10
    # Subsequent behaviour matches, including rule 2 against recomputed reservations.
    follow_up: list[Command] = [job("x", 351), job("y", 350), status("running", JobStatus.DONE)]
    for command in follow_up:
        assert apply(copy, command) == apply(original, command)
    assert copy.digest() == original.digest()


def test_restore_discards_earlier_state() -> None:
    machine = busy_farm()
    machine.restore(FarmStateMachine().snapshot())
    assert machine.printers() == [] and machine.filaments() == [] and machine.print_jobs() == []
    assert machine.reserved_grams("f1") == 0
    assert machine.last_applied_index == 0
    assert machine.digest() == FarmStateMachine().digest()
    accepted(apply(machine, printer("p1", tag=tag("k1"))))  # k1 is forgotten too


def _edited_snapshot(machine: FarmStateMachine, edit: Any) -> bytes:
    document = msgpack.unpackb(machine.snapshot(), raw=False)
    edit(document)
    return msgpack.packb(document, use_bin_type=True)  # type: ignore[no-any-return]


def _set_job_filament(document: dict[str, Any]) -> None:
    document["state"]["print_jobs"][0]["filament_id"] = "ghost"


def _over_reserve(document: dict[str, Any]) -> None:
    document["state"]["filaments"][0]["remaining_weight_in_grams"] = 1


def _duplicate_printer(document: dict[str, Any]) -> None:
    document["state"]["printers"].append(document["state"]["printers"][0])


def _duplicate_key(document: dict[str, Any]) -> None:
    document["state"]["idempotency"].append(document["state"]["idempotency"][0])


def _bad_status(document: dict[str, Any]) -> None:
    document["state"]["print_jobs"][0]["status"] = "Paused"


def _future_format(document: dict[str, Any]) -> None:
    document["format"] = 3


@pytest.mark.parametrize(
    "edit",
    [
        _set_job_filament,
        _over_reserve,
        _duplicate_printer,
        _duplicate_key,
        _bad_status,
        _future_format,
    ],
)
def test_restore_refuses_inconsistent_snapshots_and_keeps_its_state(edit: Any) -> None:
    machine = busy_farm()
    before = machine.digest()
    with pytest.raises(SnapshotDecodeError):
        machine.restore(_edited_snapshot(busy_farm(), edit))
    with pytest.raises(SnapshotDecodeError):
        machine.restore(b"\x00not a snapshot")
    assert machine.digest() == before


def test_digest_is_equal_for_equal_states() -> None:
    assert busy_farm().digest() == busy_farm().digest()
    assert FarmStateMachine().digest() == FarmStateMachine().digest()
    assert len(FarmStateMachine().digest()) == 64


def test_digest_ignores_the_applied_index() -> None:
    early, late = FarmStateMachine(), FarmStateMachine()
    early.apply(1, encode_command(printer()))
    late.apply(40, encode_command(printer()))
    assert early.digest() == late.digest()


def test_digest_differs_for_different_states() -> None:
    base = busy_farm()
    digests = {base.digest()}
    changes: list[Command] = [
        printer("p9"),
        filament("f9"),
        job("j9", 1),
        status("queued", JobStatus.RUNNING),
        printer("p1", tag=tag("k8")),  # refused, so it differs only by its recorded result
    ]
    for command in changes:
        machine = busy_farm()
        apply(machine, command)
        digests.add(machine.digest())
    assert len(digests) == len(changes) + 1


def test_digest_depends_on_creation_order() -> None:
    ab, ba = FarmStateMachine(), FarmStateMachine()
    for pid in ["a", "b"]:
        apply(ab, printer(pid))
    for pid in ["b", "a"]:
        apply(ba, printer(pid))
    assert ab.digest() != ba.digest()


def test_digest_depends_on_idempotency_order() -> None:
    first, second = farm(), farm()
    # Both refused as duplicates: the same two records, kept in opposite orders.
    for key in ["k1", "k2"]:
        assert rejected_code(apply(first, printer("p1", tag=tag(key)))) == "duplicate_id"
    for key in ["k2", "k1"]:
        assert rejected_code(apply(second, printer("p1", tag=tag(key)))) == "duplicate_id"
    assert first.printers() == second.printers()
    assert first.digest() != second.digest()
