"""The print farm's state and SPEC §3's business rules.

``Farm.execute`` is the one place state changes. It checks every rule against the current
state and either applies the whole command or nothing. Objects live in ``RecordTable``s
(creation order, O(1) frozen views for snapshots: see ``raft3d.domain.record_table``), each
kept as its snapshot bytes (``raft3d.domain.records``), and each
filament's reserved weight (the sum over its Queued/Running jobs) is kept up to date as jobs
are created and finish, so rule 2 is an O(1) check rather than a scan of all jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import assert_never

from raft3d.domain.commands import (
    Command,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    UpdateJobStatus,
)
from raft3d.domain.errors import FarmInconsistentError
from raft3d.domain.model import (
    Filament,
    JobStatus,
    ObjectCounts,
    Printer,
    PrintJob,
    is_allowed_transition,
)
from raft3d.domain.record_table import RecordsView, RecordTable
from raft3d.domain.records import (
    Records,
    decode_filament,
    decode_print_job,
    decode_printer,
    encode_record,
)
from raft3d.domain.results import Accepted, RejectionCode, Result, rejected


class Farm:
    def __init__(self) -> None:
        self._printers: Records[Printer] = Records(decode_printer)
        self._filaments: Records[Filament] = Records(decode_filament)
        self._jobs: Records[PrintJob] = Records(decode_print_job)
        # Derived (recomputed on restore), so a plain dict: never part of a snapshot.
        self._reserved_grams: dict[str, int] = {}  # filament id -> weight of its active jobs

    # -- queries -------------------------------------------------------------------------

    def printers(self) -> Sequence[Printer]:
        return self._printers.values()

    def filaments(self) -> Sequence[Filament]:
        return self._filaments.values()

    def print_jobs(self, status: JobStatus | None = None) -> Sequence[PrintJob]:
        if status is None:
            return self._jobs.values()
        return [job for job in self._jobs.values() if job.status == status]

    def print_job(self, job_id: str) -> PrintJob | None:
        return self._jobs.get(job_id)

    def counts(self) -> ObjectCounts:
        return ObjectCounts(len(self._printers), len(self._filaments), len(self._jobs))

    def reserved_grams(self, filament_id: str) -> int:
        return self._reserved_grams.get(filament_id, 0)

    def printer(self, printer_id: str) -> Printer | None:
        return self._printers.get(printer_id)

    def filament(self, filament_id: str) -> Filament | None:
        return self._filaments.get(filament_id)

    def reservations(self) -> dict[str, int]:
        """A copy of every roll's reserved weight, taken at once (a C-speed dict copy)."""
        return dict(self._reserved_grams)

    def available_grams(self, filament: Filament) -> int:
        """What new jobs may still reserve on a roll (SPEC rule 2's bound)."""
        return filament.remaining_weight_in_grams - self.reserved_grams(filament.id)

    # -- the state transition ------------------------------------------------------------

    def execute(self, command: Command) -> Result:
        match command:
            case CreatePrinter():
                return self._create_printer(command)
            case CreateFilament():
                return self._create_filament(command)
            case CreatePrintJob():
                return self._create_print_job(command)
            case UpdateJobStatus():
                return self._update_job_status(command)
            case _:
                assert_never(command)

    def _create_printer(self, command: CreatePrinter) -> Result:
        if command.id in self._printers:
            return _duplicate("printer", command.id)
        printer = Printer(id=command.id, company=command.company, model=command.model)
        self._printers.put(printer)
        return Accepted(printer.to_dict())

    def _create_filament(self, command: CreateFilament) -> Result:
        if command.id in self._filaments:
            return _duplicate("filament", command.id)
        filament = Filament(
            id=command.id,
            type=command.type,
            color=command.color,
            total_weight_in_grams=command.total_weight_in_grams,
            remaining_weight_in_grams=command.remaining_weight_in_grams,
        )
        self._filaments.put(filament)
        self._reserved_grams[filament.id] = 0
        return Accepted(filament.to_dict())

    def _create_print_job(self, command: CreatePrintJob) -> Result:
        if command.id in self._jobs:
            return _duplicate("print_job", command.id)
        if command.printer_id not in self._printers:
            return rejected(
                RejectionCode.UNKNOWN_PRINTER,
                f"printer {command.printer_id!r} does not exist",
                {"printer_id": command.printer_id},
            )
        filament = self._filaments.get(command.filament_id)
        if filament is None:
            return rejected(
                RejectionCode.UNKNOWN_FILAMENT,
                f"filament {command.filament_id!r} does not exist",
                {"filament_id": command.filament_id},
            )
        available = self.available_grams(filament)
        if command.print_weight_in_grams > available:
            return rejected(
                RejectionCode.INSUFFICIENT_FILAMENT,
                f"filament {filament.id!r} has {available} g available, "
                f"the job needs {command.print_weight_in_grams} g",
                {
                    "filament_id": filament.id,
                    "requested": command.print_weight_in_grams,
                    "available": available,
                },
            )
        job = PrintJob(
            id=command.id,
            printer_id=command.printer_id,
            filament_id=command.filament_id,
            filepath=command.filepath,
            print_weight_in_grams=command.print_weight_in_grams,
            status=JobStatus.QUEUED,
        )
        self._jobs.put(job)
        self._reserved_grams[filament.id] += job.print_weight_in_grams
        return Accepted(job.to_dict())

    def _update_job_status(self, command: UpdateJobStatus) -> Result:
        job = self._jobs.get(command.job_id)
        if job is None:
            return rejected(
                RejectionCode.JOB_NOT_FOUND,
                f"print job {command.job_id!r} does not exist",
                {"job_id": command.job_id},
            )
        if not is_allowed_transition(job.status, command.status):
            return rejected(
                RejectionCode.ILLEGAL_TRANSITION,
                f"print job {job.id!r} cannot go from {job.status.value} to {command.status.value}",
                {"from": job.status.value, "to": command.status.value},
            )
        updated = replace(job, status=command.status)
        self._jobs.put(updated)
        weight = job.print_weight_in_grams
        if job.status.reserves_filament and not updated.status.reserves_filament:
            self._reserved_grams[job.filament_id] -= weight
        if updated.status is JobStatus.DONE:  # SPEC rule 4: the print used the filament
            filament = self._filaments[job.filament_id]
            self._filaments.put(
                replace(
                    filament, remaining_weight_in_grams=filament.remaining_weight_in_grams - weight
                )
            )
        return Accepted(updated.to_dict())

    def view(self) -> FarmView:
        """O(1) frozen picture of every object, for encoding a snapshot on another thread."""
        return FarmView(self._printers.view(), self._filaments.view(), self._jobs.view())

    @classmethod
    def from_objects(
        cls,
        printers: Iterable[Printer],
        filaments: Iterable[Filament],
        jobs: Iterable[PrintJob],
    ) -> Farm:
        """A farm holding these objects in this order; reservations are recomputed.

        Raises FarmInconsistentError for anything apply could never have produced.
        """
        builder = FarmBuilder()
        for printer in printers:
            builder.printer(printer)
        for filament in filaments:
            builder.filament(filament)
        for job in jobs:
            builder.print_job(job)
        return builder.finish()


class FarmBuilder:
    """Rebuilds a farm from a snapshot's objects, given one at a time in snapshot order
    (printers, then filaments, then jobs), so no second copy of the farm is ever held.

    Objects come as their checked snapshot bytes (``add_*``, what a restore does: no object
    is built, no bytes re-encoded) or as objects. Each kind's table is built in place; the
    farm exists only once ``finish`` hands it over.

    Raises FarmInconsistentError for anything apply could never have produced.
    """

    def __init__(self) -> None:
        self._printers = RecordTable()
        self._filaments = RecordTable()
        self._jobs = RecordTable()
        self._printer_ids: set[str] = set()  # for the jobs' checks: a set is the fastest
        self._remaining: dict[str, int] = {}  # filament id -> remaining weight
        self._reserved: dict[str, int] = {}  # filament id -> weight of its active jobs

    def printer(self, printer: Printer) -> None:
        self.add_printer(printer.id, encode_record(printer))

    def filament(self, filament: Filament) -> None:
        self.add_filament(
            filament.id,
            encode_record(filament),
            filament.total_weight_in_grams,
            filament.remaining_weight_in_grams,
        )

    def print_job(self, job: PrintJob) -> None:
        self.add_print_job(
            job.id,
            encode_record(job),
            job.printer_id,
            job.filament_id,
            job.print_weight_in_grams if job.status.reserves_filament else 0,
        )

    def add_printer(self, key: str, raw: bytes) -> None:
        if not self._printers.add(key, raw):
            raise FarmInconsistentError(f"key {key!r} appears twice")
        self._printer_ids.add(key)

    def add_filament(self, key: str, raw: bytes, total: int, remaining: int) -> None:
        if len(self._jobs):
            raise FarmInconsistentError("filaments must come before print jobs")
        if not 0 <= remaining <= total:
            raise FarmInconsistentError(f"filament {key!r}: remaining out of range")
        if not self._filaments.add(key, raw):
            raise FarmInconsistentError(f"filament id {key!r} appears twice")
        self._reserved[key] = 0
        self._remaining[key] = remaining

    def add_print_job(
        self, key: str, raw: bytes, printer_id: str, filament_id: str, reserved: int
    ) -> None:
        """``reserved``: the job's print weight if its status reserves filament, else 0."""
        if printer_id not in self._printer_ids or filament_id not in self._reserved:
            raise FarmInconsistentError(f"print job {key!r} refers to a missing object")
        if not self._jobs.add(key, raw):
            raise FarmInconsistentError(f"key {key!r} appears twice")
        self._reserved[filament_id] += reserved

    def finish(self) -> Farm:
        remaining = self._remaining
        for filament_id, reserved in self._reserved.items():
            if reserved > remaining[filament_id]:
                raise FarmInconsistentError(f"filament {filament_id!r} is over-reserved")
        farm = Farm()
        farm._printers = Records.built(decode_printer, self._printers)
        farm._filaments = Records.built(decode_filament, self._filaments)
        farm._jobs = Records.built(decode_print_job, self._jobs)
        farm._reserved_grams = self._reserved
        return farm


def _duplicate(kind: str, object_id: str) -> Result:
    return rejected(
        RejectionCode.DUPLICATE_ID,
        f"a {kind.replace('_', ' ')} with id {object_id!r} already exists",
        {"kind": kind, "id": object_id},
    )


@dataclass(frozen=True, slots=True)
class FarmView:
    """Every object as it was when ``Farm.view`` was called; readable from any thread."""

    printers: RecordsView  # each object's snapshot bytes (domain.records)
    filaments: RecordsView
    print_jobs: RecordsView
