"""Unit tests of the print-farm state machine: one or more per rule, code and guarantee (the
command codec, idempotency and snapshots have files of their own)."""

from __future__ import annotations

import itertools

import pytest

from raft3d.domain import (
    ALLOWED_TRANSITIONS,
    Accepted,
    CommandDecodeError,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    FarmStateMachine,
    Filament,
    FilamentType,
    JobStatus,
    Printer,
    PrintJob,
    Rejected,
    encode_command,
)
from tests.support.farms import (
    accepted,
    apply,
    farm,
    filament,
    job,
    job_in,
    printer,
    rejected_code,
    remaining,
    status,
)

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
