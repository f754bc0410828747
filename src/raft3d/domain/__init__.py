"""The print farm's replicated state machine: objects, commands, rules, snapshots.

Pure and deterministic, no I/O; imports nothing else of raft3d. The node applies each
committed log entry with ``FarmStateMachine.apply``; the HTTP layer builds commands,
encodes them with ``encode_command`` and maps the ``Result`` it gets back.
"""

from raft3d.domain.commands import (
    Command,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    IdempotencyTag,
    UpdateJobStatus,
    decode_command,
    encode_command,
)
from raft3d.domain.errors import (
    CommandDecodeError,
    DomainError,
    InvalidCommandError,
    SnapshotDecodeError,
)
from raft3d.domain.model import (
    ALLOWED_TRANSITIONS,
    Filament,
    FilamentType,
    JobStatus,
    Printer,
    PrintJob,
    is_allowed_transition,
)
from raft3d.domain.results import Accepted, Rejected, RejectionCode, Result
from raft3d.domain.state import FarmStateMachine

__all__ = [
    "ALLOWED_TRANSITIONS",
    "Accepted",
    "Command",
    "CommandDecodeError",
    "CreateFilament",
    "CreatePrintJob",
    "CreatePrinter",
    "DomainError",
    "FarmStateMachine",
    "Filament",
    "FilamentType",
    "IdempotencyTag",
    "InvalidCommandError",
    "JobStatus",
    "PrintJob",
    "Printer",
    "Rejected",
    "RejectionCode",
    "Result",
    "SnapshotDecodeError",
    "UpdateJobStatus",
    "decode_command",
    "encode_command",
    "is_allowed_transition",
]
