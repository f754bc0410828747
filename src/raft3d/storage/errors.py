"""Errors raised by the durable storage layer."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of storage failures (I/O, a data directory already in use, use after close)."""


class StorageCorruptError(StorageError):
    """The stored state is inconsistent and cannot be recovered without losing committed data.

    Examples: the log after the snapshot has a gap, or the snapshot the log was compacted to is
    missing or fails its checksum. The node must not start from such a directory.
    """
