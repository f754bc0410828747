"""Property tests: random command sequences, valid and not, against two replicas.

A hypothesis rule-based machine sends commands to a primary and a follower replica. Ids and
idempotency keys come from small pools so that sequences collide often: duplicate ids, rolls
running out, illegal transitions, retried and reused keys, keys evicted from a small table.
After every command both replicas must agree, the state must keep its invariants, the result
must match a naive reading of SPEC §3, and a refused command must change nothing. From time to
time the follower is replaced by a machine restored from the primary's snapshot, which must
then behave exactly like the primary.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raft3d.domain import (
    Accepted,
    Command,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    FarmStateMachine,
    Filament,
    FilamentType,
    IdempotencyTag,
    JobStatus,
    Printer,
    PrintJob,
    Rejected,
    Result,
    UpdateJobStatus,
    encode_command,
    is_allowed_transition,
)

PRINTER_IDS = ["p0", "p1", "p2", "p3"]
FILAMENT_IDS = ["f0", "f1", "f2", "f3"]
STOCKED = 3  # the first three of each are created up front
JOB_IDS = [f"j{n}" for n in range(10)]
KEYS = [f"k{n}" for n in range(8)]

# SPEC rule 3, written out independently of the code under test (a list: draws need an order).
LEGAL = [
    (JobStatus.QUEUED, JobStatus.RUNNING),
    (JobStatus.RUNNING, JobStatus.DONE),
    (JobStatus.QUEUED, JobStatus.CANCELLED),
    (JobStatus.RUNNING, JobStatus.CANCELLED),
]


class SmallTableMachine(FarmStateMachine):
    """Evicts after a few keys, so that eviction happens within short sequences."""

    IDEMPOTENCY_CAPACITY = 3


def with_ghost(ids: list[str]) -> st.SearchStrategy[str]:
    """One of ``ids`` most of the time, sometimes an id that never exists."""
    return st.sampled_from([*ids, *ids, *ids, "ghost"])


# A third of commands carry a key. (sampled_from keeps the odds; one_of favours st.none().)
keys = st.sampled_from([*[None] * 2 * len(KEYS), *KEYS])
weights = st.integers(1, 60)


new_printers = st.builds(
    CreatePrinter,
    id=st.sampled_from(PRINTER_IDS),
    company=st.just("Creality"),
    model=st.sampled_from(["Ender 3", "K1"]),
)
new_filaments = st.tuples(st.integers(1, 200), st.integers(0, 200)).flatmap(
    lambda sizes: st.builds(
        CreateFilament,
        id=st.sampled_from(FILAMENT_IDS),
        type=st.sampled_from(FilamentType),
        color=st.just("blue"),
        total_weight_in_grams=st.just(sizes[0]),
        remaining_weight_in_grams=st.just(max(0, sizes[0] - sizes[1])),
    )
)


def fingerprint(command: Command) -> str:
    """What the HTTP layer does: a hash of the request, independent of the key."""
    untagged = dataclasses.replace(command, idempotency=None)
    return hashlib.sha256(encode_command(untagged)).hexdigest()


def tagged(command: Command, key: str | None) -> Command:
    if key is None:
        return command
    return dataclasses.replace(command, idempotency=IdempotencyTag(key, fingerprint(command)))


def apply(machine: FarmStateMachine, command: Command) -> Result:
    return machine.apply(machine.last_applied_index + 1, encode_command(command))


@dataclass(frozen=True)
class FarmView:
    """Everything the farm's queries show (the idempotency table aside)."""

    printers: list[Printer]
    filaments: list[Filament]
    jobs: list[PrintJob]

    @classmethod
    def of(cls, machine: FarmStateMachine) -> FarmView:
        return cls(list(machine.printers()), list(machine.filaments()), list(machine.print_jobs()))


def expected_refusal(view: FarmView, command: Command) -> str | None:
    """SPEC §3 read naively, scanning everything: the code a new command must get."""
    printer_ids = {p.id for p in view.printers}
    rolls = {f.id: f for f in view.filaments}
    jobs = {j.id: j for j in view.jobs}
    match command:
        case CreatePrinter():
            return "duplicate_id" if command.id in printer_ids else None
        case CreateFilament():
            return "duplicate_id" if command.id in rolls else None
        case CreatePrintJob():
            if command.id in jobs:
                return "duplicate_id"
            if command.printer_id not in printer_ids:
                return "unknown_printer"
            if command.filament_id not in rolls:
                return "unknown_filament"
            held = sum(
                j.print_weight_in_grams
                for j in view.jobs
                if j.filament_id == command.filament_id
                and j.status in (JobStatus.QUEUED, JobStatus.RUNNING)
            )
            free = rolls[command.filament_id].remaining_weight_in_grams - held
            return "insufficient_filament" if command.print_weight_in_grams > free else None
        case UpdateJobStatus():
            if command.job_id not in jobs:
                return "job_not_found"
            legal = (jobs[command.job_id].status, command.status) in LEGAL
            return None if legal else "illegal_transition"


def check_invariants(machine: FarmStateMachine) -> None:
    jobs = machine.print_jobs()
    for roll in machine.filaments():
        assert 0 <= roll.remaining_weight_in_grams <= roll.total_weight_in_grams
        held = sum(
            j.print_weight_in_grams
            for j in jobs
            if j.filament_id == roll.id and j.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        )
        assert machine.reserved_grams(roll.id) == held
        assert held <= roll.remaining_weight_in_grams
        assert machine.available_grams(roll) == roll.remaining_weight_in_grams - held >= 0
        assert machine.filament(roll.id) == roll
    for printer in machine.printers():
        assert machine.printer(printer.id) == printer
    assert machine.printer("ghost") is None and machine.filament("ghost") is None


def check_statuses_moved_legally(before: FarmView, after: FarmView) -> None:
    old = {j.id: j.status for j in before.jobs}
    new = {j.id: j.status for j in after.jobs}
    assert old.keys() <= new.keys()  # jobs never disappear
    for job_id, status in new.items():
        if job_id not in old:
            assert status is JobStatus.QUEUED
        elif status is not old[job_id]:
            assert (old[job_id], status) in LEGAL
            assert is_allowed_transition(old[job_id], status)


def check_filament_used_only_by_finished_jobs(before: FarmView, after: FarmView) -> None:
    """SPEC rule 4: a roll loses exactly the weight of the jobs that just became Done."""
    old_status = {j.id: j.status for j in before.jobs}
    used = {f.id: 0 for f in before.filaments}
    for job in after.jobs:
        if job.status is JobStatus.DONE and old_status.get(job.id) is not JobStatus.DONE:
            used[job.filament_id] += job.print_weight_in_grams
    now = {f.id: f for f in after.filaments}
    for roll in before.filaments:
        assert now[roll.id].total_weight_in_grams == roll.total_weight_in_grams
        expected = roll.remaining_weight_in_grams - used[roll.id]
        assert now[roll.id].remaining_weight_in_grams == expected


def check_step(
    machine: FarmStateMachine,
    command: Command,
    result: Result,
    before: FarmView,
    digest_before: str,
) -> None:
    """What one applied command may and must have changed."""
    after = FarmView.of(machine)
    check_statuses_moved_legally(before, after)
    check_filament_used_only_by_finished_jobs(before, after)
    if result.replayed or (
        isinstance(result, Rejected) and result.code == "idempotency_key_reused"
    ):
        assert command.idempotency is not None
        assert machine.digest() == digest_before
        return
    refusal = None if isinstance(result, Accepted) else result.code
    assert refusal == expected_refusal(before, command)
    if isinstance(result, Rejected):
        assert after == before
        # A keyed refusal leaves one trace: its result, remembered under the key.
        assert (machine.digest() == digest_before) == (command.idempotency is None)
    else:
        assert after != before and machine.digest() != digest_before


class FarmReplicas(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.primary = SmallTableMachine()
        self.follower = SmallTableMachine()
        self.sent: list[Command] = []

    def send(self, command: Command) -> None:
        before, digest_before = FarmView.of(self.primary), self.primary.digest()
        result = apply(self.primary, command)
        assert apply(self.follower, command) == result
        assert self.follower.digest() == self.primary.digest()
        check_step(self.primary, command, result, before, digest_before)
        self.sent.append(command)

    @initialize(totals=st.lists(st.integers(1, 200), min_size=STOCKED, max_size=STOCKED))
    def stock_the_farm(self, totals: list[int]) -> None:
        for printer_id in PRINTER_IDS[:STOCKED]:
            self.send(CreatePrinter(printer_id, "Creality", "Ender 3"))
        for filament_id, total in zip(FILAMENT_IDS[:STOCKED], totals, strict=True):
            self.send(CreateFilament(filament_id, FilamentType.PLA, "red", total, total))

    @rule(command=st.one_of(new_printers, new_filaments), key=keys)
    def restock(self, command: CreatePrinter | CreateFilament, key: str | None) -> None:
        """Adds a printer or roll: often one that exists (a duplicate), sometimes a new one."""
        self.send(tagged(command, key))

    @rule(
        job_id=st.sampled_from(JOB_IDS),
        printer_id=with_ghost(PRINTER_IDS[:STOCKED]),
        filament_id=with_ghost(FILAMENT_IDS[:STOCKED]),
        weight=weights,
        key=keys,
    )
    def create_job(
        self, job_id: str, printer_id: str, filament_id: str, weight: int, key: str | None
    ) -> None:
        job = CreatePrintJob(job_id, printer_id, filament_id, f"prints/{job_id}.gcode", weight)
        self.send(tagged(job, key))

    @rule(job_id=with_ghost(JOB_IDS), status=st.sampled_from(JobStatus), key=keys)
    def update_any_job(self, job_id: str, status: JobStatus, key: str | None) -> None:
        self.send(tagged(UpdateJobStatus(job_id, status), key))

    @precondition(lambda self: bool(self.primary.print_jobs()))
    @rule(data=st.data(), onward=st.booleans(), key=keys)
    def update_existing_job(self, data: st.DataObject, onward: bool, key: str | None) -> None:
        """Moves jobs along (often legally, so that jobs reach Done) or tries any status."""
        job = data.draw(st.sampled_from(self.primary.print_jobs()))
        targets = [dst for src, dst in LEGAL if src is job.status] if onward else []
        status = data.draw(st.sampled_from(targets or list(JobStatus)))
        self.send(tagged(UpdateJobStatus(job.id, status), key))

    @rule(back=st.integers(1, 8))
    def resend(self, back: int) -> None:
        """A client retry (or a duplicate delivery) of a recent command."""
        self.send(self.sent[-min(back, len(self.sent))])

    @rule()
    def replace_follower_from_snapshot(self) -> None:
        restored = SmallTableMachine()
        apply(restored, CreatePrinter("stale", "state", "to discard"))
        restored.restore(self.primary.snapshot())
        assert restored.digest() == self.primary.digest()
        assert restored.snapshot() == self.primary.snapshot()
        assert restored.last_applied_index == self.primary.last_applied_index
        assert FarmView.of(restored) == FarmView.of(self.primary)
        self.follower = restored

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.primary)
        check_invariants(self.follower)


TestFarmReplicas = FarmReplicas.TestCase
TestFarmReplicas.settings = settings(max_examples=100, stateful_step_count=60, deadline=None)
