"""The farm's sequential model, split into independent parts for the linearizability search.

SPEC §3's rules relate a filament roll to the jobs that reserve it and nothing else, so the
history is partitioned per filament (the roll's creation, its jobs' creations and status
changes) and per printer (its creation). The clients only put jobs on printers whose creation
was acknowledged before the job was sent, so a job's printer always exists in the model.
Outcomes are compared by rejection code; bodies are compared against the event log replay.

Linearizable reads take part too, projected onto each part they overlap in time: a read of
the filaments list says what it showed of this roll (its remaining weight, or absent), a read
of the Queued or Running jobs which of this roll's jobs were in that status, a read of the
printers whether this printer existed. Reads are stored as digests; what a read showed is
taken from the replayed state at its applied index once its digest matched that state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from raft3d.domain import JobStatus, is_allowed_transition

from .history import OK, REFUSED, UNKNOWN, WriteOp
from .linearizability import Timed, Verdict, check

_RESERVING = (JobStatus.QUEUED, JobStatus.RUNNING)


class FilamentState(NamedTuple):
    exists: bool
    remaining: int
    jobs: frozenset[tuple[str, int, JobStatus]]  # (job id, weight, status)


class PrinterState(NamedTuple):
    exists: bool


@dataclass(frozen=True)
class ProjectedRead:
    """What a linearizable read showed of one part (see ``project``)."""

    op_id: int
    target: str
    value: object
    invoke: float
    complete: float


def project(state: FilamentState | PrinterState, target: str) -> object:
    """What a read of ``target`` shows of this part, in the model's state."""
    if isinstance(state, PrinterState):
        return state.exists
    if target == "filaments":
        return state.remaining if state.exists else None
    status = JobStatus.QUEUED if target == "jobs_queued" else JobStatus.RUNNING
    return frozenset(j for j, _, s in state.jobs if s is status)


def _job(state: FilamentState, job_id: str) -> tuple[str, int, JobStatus] | None:
    return next((j for j in state.jobs if j[0] == job_id), None)


def apply_filament_op(state: FilamentState, op: WriteOp) -> tuple[str, FilamentState]:
    """The model's answer (``"ok"`` or a rejection code) and the state after it."""
    args: dict[str, Any] = op.args
    if op.kind == "create_filament":
        if state.exists:
            return "duplicate_id", state
        return OK, FilamentState(True, args["remaining_weight_in_grams"], state.jobs)
    if op.kind == "create_job":
        if _job(state, args["id"]) is not None:
            return "duplicate_id", state
        if not state.exists:
            return "unknown_filament", state
        reserved = sum(w for _, w, s in state.jobs if s in _RESERVING)
        weight = args["print_weight_in_grams"]
        if weight > state.remaining - reserved:
            return "insufficient_filament", state
        jobs = state.jobs | {(args["id"], weight, JobStatus.QUEUED)}
        return OK, FilamentState(True, state.remaining, jobs)
    if op.kind == "update_status":
        job = _job(state, args["job_id"])
        if job is None:
            return "job_not_found", state
        target = JobStatus(args["status"])
        if not is_allowed_transition(job[2], target):
            return "illegal_transition", state
        remaining = state.remaining - job[1] if target is JobStatus.DONE else state.remaining
        jobs = (state.jobs - {job}) | {(job[0], job[1], target)}
        return OK, FilamentState(True, remaining, jobs)
    raise ValueError(f"not a filament operation: {op.kind}")


def apply_printer_op(state: PrinterState, op: WriteOp) -> tuple[str, PrinterState]:
    if state.exists:
        return "duplicate_id", state
    return OK, PrinterState(True)


def _observed(op: WriteOp) -> str:
    return OK if op.outcome == OK else op.code


def filament_step(state: FilamentState, op: WriteOp | ProjectedRead) -> Sequence[FilamentState]:
    if isinstance(op, ProjectedRead):
        return [state] if project(state, op.target) == op.value else []
    answer, after = apply_filament_op(state, op)
    if op.outcome == UNKNOWN:  # taking effect now; "never" is the search's to choose
        return [after]
    return [after] if answer == _observed(op) else []


def printer_step(state: PrinterState, op: WriteOp | ProjectedRead) -> Sequence[PrinterState]:
    if isinstance(op, ProjectedRead):
        return [state] if project(state, op.target) == op.value else []
    answer, after = apply_printer_op(state, op)
    if op.outcome == UNKNOWN:
        return [after]
    return [after] if answer == _observed(op) else []


def partitions(writes: Sequence[WriteOp]) -> dict[str, list[WriteOp]]:
    parts: dict[str, list[WriteOp]] = {}
    for op in writes:
        if op.outcome in (OK, REFUSED, UNKNOWN):
            parts.setdefault(op.partition, []).append(op)
    return parts


def check_partition(
    name: str, ops: Sequence[WriteOp], reads: Sequence[ProjectedRead], max_steps: int
) -> Verdict:
    timed: list[Timed[WriteOp | ProjectedRead]] = [
        Timed(op, op.invoke, float("inf") if op.outcome == UNKNOWN else op.complete) for op in ops
    ]
    timed += [Timed(read, read.invoke, read.complete) for read in reads]
    if name.startswith("printer:"):
        return check(timed, PrinterState(False), printer_step, max_steps)
    return check(timed, FilamentState(False, 0, frozenset()), filament_step, max_steps)
