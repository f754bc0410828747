"""The replicated state machine: what every replica applies to each committed log entry.

``FarmStateMachine`` adds to the farm's business rules (``raft3d.domain.farm``) what
replication needs: decoding log entries, the applied index, idempotent retries, snapshots and
a digest for comparing replicas. It is deterministic: the same entries in the same order give
the same results and the same state on every replica. It does no I/O and is not thread-safe;
the node driver calls it from one task.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import ClassVar

from raft3d.domain.commands import Command, decode_command
from raft3d.domain.farm import Farm
from raft3d.domain.idempotency import IdempotencyTable
from raft3d.domain.model import Filament, JobStatus, ObjectCounts, Printer, PrintJob
from raft3d.domain.persistent import IndexedValues
from raft3d.domain.results import RejectionCode, Result, detached, rejected
from raft3d.domain.snapshot import (
    ByteRanges,
    RestoredState,
    StateCapture,
    decode_snapshot,
    snapshot_restorer,
    state_digest,
)


class FarmStateMachine:
    # Read when the machine is built or restored; every replica must use the same value.
    IDEMPOTENCY_CAPACITY: ClassVar[int] = 100_000

    def __init__(self) -> None:
        self._farm = Farm()
        self._idempotency = IdempotencyTable(self.IDEMPOTENCY_CAPACITY)
        self._last_applied_index = 0
        # What each applied entry returned, kept until ``forget_outcomes`` (the node calls it
        # as its log is compacted, so outcomes live exactly as long as their entries). Carried
        # in snapshots, so a node restarted from one can still report its retained entries.
        self._outcomes: IndexedValues[Result] = IndexedValues()

    @property
    def last_applied_index(self) -> int:
        """Index of the last entry passed to ``apply`` (or restored with a snapshot)."""
        return self._last_applied_index

    def apply(self, index: int, data: bytes) -> Result:
        """Apply the committed entry at ``index``; the only method that changes state.

        Indexes must increase (gaps, such as a leader's no-op entries, are fine). Raises
        CommandDecodeError, changing nothing, for an entry this version cannot decode: the
        caller must stop rather than skip it.
        """
        if index <= self._last_applied_index:
            raise ValueError(
                f"entry {index} is not after the last applied entry {self._last_applied_index}"
            )
        command = decode_command(data)
        result = self._apply_command(command)
        self._last_applied_index = index
        self._outcomes.append(index, result)
        return result

    def outcome(self, index: int) -> Result | None:
        """What applying ``index`` returned; None for a no-op, or once forgotten."""
        return self._outcomes.get(index)

    def forget_outcomes(self, through: int) -> None:
        """Drop the outcomes of entries up to and including ``through``."""
        self._outcomes.drop_through(through)

    def _apply_command(self, command: Command) -> Result:
        tag = command.idempotency
        if tag is None:
            return self._farm.execute(command)
        record = self._idempotency.get(tag.key)
        if record is None:
            result = self._farm.execute(command)
            self._idempotency.remember(tag.key, tag.fingerprint, result)
            return result
        if record.fingerprint == tag.fingerprint:
            # A retry: answer as the first time, even if the object has changed since.
            return detached(record.result, replayed=True)
        # Not recorded under the key: the key keeps answering for its original request.
        return rejected(
            RejectionCode.IDEMPOTENCY_KEY_REUSED,
            f"idempotency key {tag.key!r} was already used for a different request",
            {"key": tag.key},
        )

    # -- snapshots ----------------------------------------------------------------------

    def capture(self) -> StateCapture:
        """Freeze the whole state now, in O(1) whatever its size; ``encode()`` it anywhere.

        The node calls this on its event loop and encodes it there in short slices: see
        ``raft3d.domain.persistent`` and ``raft3d.node.snapshotting`` for the design.
        """
        return StateCapture(
            self._last_applied_index,
            self._farm.view(),
            self._idempotency.view(),
            self._outcomes.view(),
        )

    def snapshot(self) -> bytes:
        """The whole state (objects, idempotency table, outcomes, applied index) as bytes."""
        return self.capture().encode()

    def restore(self, data: bytes) -> None:
        """Replace all state with a snapshot's; on SnapshotDecodeError nothing changes."""
        self._install(decode_snapshot(data, self.IDEMPOTENCY_CAPACITY))

    def restorer(self, data: ByteRanges) -> Generator[None, None, None]:
        """``restore`` in steps of a fraction of a millisecond each, for a caller that runs
        other work between them. The state is replaced only as the last step ends; until
        then (and for good, on SnapshotDecodeError or if the caller drops it part way)
        everything reads and applies as before."""
        self._install((yield from snapshot_restorer(data, self.IDEMPOTENCY_CAPACITY)))

    def _install(self, restored: RestoredState) -> None:
        self._farm = restored.farm
        self._idempotency = restored.idempotency
        self._last_applied_index = restored.last_applied_index
        self._outcomes = IndexedValues(restored.outcomes)

    def digest(self) -> str:
        """Hex SHA-256 of the objects and the idempotency table, in order.

        Equal on two replicas exactly when their states are equal. The applied index is not
        included (an empty no-op entry changes no state); compare it separately.
        """
        return state_digest(self._farm, self._idempotency)

    # -- queries ------------------------------------------------------------------------

    def printers(self) -> Sequence[Printer]:
        """All printers in creation order (frozen now; each decoded when read)."""
        return self._farm.printers()

    def filaments(self) -> Sequence[Filament]:
        """All filament rolls in creation order."""
        return self._farm.filaments()

    def print_jobs(self, status: JobStatus | None = None) -> Sequence[PrintJob]:
        """Print jobs in creation order, optionally only those with ``status``."""
        return self._farm.print_jobs(status)

    def print_job(self, job_id: str) -> PrintJob | None:
        return self._farm.print_job(job_id)

    def counts(self) -> ObjectCounts:
        """How many printers, filaments and print jobs there are (without listing them)."""
        return self._farm.counts()

    def reserved_grams(self, filament_id: str) -> int:
        """Total print weight of the Queued and Running jobs on a filament (0 if unknown)."""
        return self._farm.reserved_grams(filament_id)

    def printer(self, printer_id: str) -> Printer | None:
        return self._farm.printer(printer_id)

    def filament(self, filament_id: str) -> Filament | None:
        return self._farm.filament(filament_id)

    def reservations(self) -> dict[str, int]:
        """Every roll's reserved weight now, as a copy later changes do not touch."""
        return self._farm.reservations()

    def available_grams(self, filament: Filament) -> int:
        """Remaining weight minus the weight of the Queued/Running jobs on the roll."""
        return self._farm.available_grams(filament)
