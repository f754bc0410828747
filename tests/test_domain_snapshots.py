"""Unit tests of the farm's snapshots: restore round-trips exactly, refuses an inconsistent
snapshot and keeps its state, and the digest says exactly whether two states are equal."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from raft3d.domain import (
    Command,
    FarmStateMachine,
    JobStatus,
    SnapshotDecodeError,
    encode_command,
)
from tests.support.farms import (
    accepted,
    apply,
    busy_farm,
    farm,
    filament,
    job,
    printer,
    rejected_code,
    status,
    tag,
)

# -- snapshot, restore, digest ------------------------------------------------------------


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


def _document(version: int, jobs: int) -> dict[str, Any]:
    """A snapshot document as plain msgpack (how the earliest encoder wrote them)."""
    state = {
        "printers": [{"id": "p1", "company": "Prusa", "model": "MK4"}],
        "filaments": [
            {
                "id": "f1",
                "type": "PLA",
                "color": "red",
                "total_weight_in_grams": 10 * jobs,
                "remaining_weight_in_grams": 10 * jobs,
            }
        ],
        "print_jobs": [
            {
                "id": f"j{n}",
                "printer_id": "p1",
                "filament_id": "f1",
                "filepath": f"prints/{n}.gcode",
                "print_weight_in_grams": 5,
                "status": "Queued" if n % 3 else "Done",
            }
            for n in range(jobs)
        ],
        "idempotency": [["k1", "fp1", ["accepted", {"id": "p1"}]]],
    }
    document: dict[str, Any] = {"format": version, "last_applied_index": 7, "state": state}
    if version >= 2:
        document["outcomes"] = [[7, ["accepted", {"id": "p1"}], False]]
    return document


@pytest.mark.parametrize("version", [1, 2])
def test_a_snapshot_written_by_earlier_versions_loads_and_encodes_back_unchanged(
    version: int,
) -> None:
    document = _document(version, 1000)  # past a few record chunks and index splits
    machine = FarmStateMachine()
    machine.restore(msgpack.packb(document, use_bin_type=True))
    assert len(machine.print_jobs()) == 1000
    assert machine.print_job("j999") is not None and machine.print_job("j1000") is None
    assert machine.reserved_grams("f1") == 5 * sum(1 for n in range(1000) if n % 3)
    document["format"] = 2
    document.setdefault("outcomes", [])
    assert machine.snapshot() == msgpack.packb(document, use_bin_type=True)


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
