"""The print farm's objects: printers, filament rolls and print jobs.

Plain immutable values. The rules that relate them live in ``raft3d.domain.farm``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class FilamentType(StrEnum):
    PLA = "PLA"
    PETG = "PETG"
    ABS = "ABS"
    TPU = "TPU"


class JobStatus(StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    DONE = "Done"
    CANCELLED = "Cancelled"

    @property
    def reserves_filament(self) -> bool:
        """A job in this status holds its print weight back from other jobs (SPEC rule 2)."""
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


# SPEC rule 3. Every status is a key so that a lookup never fails; terminal ones map to nothing.
ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = MappingProxyType(
    {
        JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
        JobStatus.RUNNING: frozenset({JobStatus.DONE, JobStatus.CANCELLED}),
        JobStatus.DONE: frozenset(),
        JobStatus.CANCELLED: frozenset(),
    }
)


def is_allowed_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class Printer:
    id: str
    company: str
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "company": self.company, "model": self.model}


@dataclass(frozen=True, slots=True)
class Filament:
    id: str
    type: FilamentType
    color: str
    total_weight_in_grams: int
    remaining_weight_in_grams: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "color": self.color,
            "total_weight_in_grams": self.total_weight_in_grams,
            "remaining_weight_in_grams": self.remaining_weight_in_grams,
        }


@dataclass(frozen=True, slots=True)
class PrintJob:
    id: str
    printer_id: str
    filament_id: str
    filepath: str
    print_weight_in_grams: int
    status: JobStatus

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "printer_id": self.printer_id,
            "filament_id": self.filament_id,
            "filepath": self.filepath,
            "print_weight_in_grams": self.print_weight_in_grams,
            "status": self.status.value,
        }


@dataclass(frozen=True, slots=True)
class ObjectCounts:
    printers: int
    filaments: int
    print_jobs: int
