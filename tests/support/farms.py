"""Print farms for unit tests of the domain: commands with sensible defaults (``printer``,
``filament``, ``job``, ``status``), applying them as the next log entry (``apply``), reading
results, idempotency tags (``tag``), and farms set up in a given state (``farm``,
``job_in``, ``busy_farm``)."""

from __future__ import annotations

from typing import Any

from raft3d.domain import (
    Accepted,
    Command,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    FarmStateMachine,
    FilamentType,
    IdempotencyTag,
    JobStatus,
    Rejected,
    Result,
    UpdateJobStatus,
    encode_command,
)


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


def tag(key: str, fingerprint: str = "fp") -> IdempotencyTag:
    return IdempotencyTag(key=key, fingerprint=fingerprint)


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
