"""Errors raised by the domain layer (kept apart so every module can import them)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of the errors this package raises."""


class InvalidCommandError(DomainError, ValueError):
    """A command was built with a field of the wrong type or outside a domain bound.

    Raised when a command object is constructed, so a bad command never reaches the log.
    """


class CommandDecodeError(DomainError):
    """Bytes that are not a command this version understands.

    Applying such an entry must stop the node: skipping it could make replicas diverge.
    """


class SnapshotDecodeError(DomainError):
    """Bytes that are not a state machine snapshot this version understands."""


class FarmInconsistentError(DomainError, ValueError):
    """Objects that no sequence of commands could have produced (found rebuilding a snapshot)."""
