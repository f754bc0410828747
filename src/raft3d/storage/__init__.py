"""Durable storage of one node: Raft log and hard state in SQLite, snapshots as files."""

from raft3d.storage.durable import DurableStorage
from raft3d.storage.errors import StorageCorruptError, StorageError
from raft3d.storage.identity import (
    IdentityMismatchError,
    NodeIdentity,
    load_or_create_identity,
    read_identity,
)
from raft3d.storage.snapshot_file import SnapshotInfo

__all__ = [
    "DurableStorage",
    "IdentityMismatchError",
    "NodeIdentity",
    "SnapshotInfo",
    "StorageCorruptError",
    "StorageError",
    "load_or_create_identity",
    "read_identity",
]
