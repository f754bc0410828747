"""Raft3D's own Raft consensus core: pure, deterministic, no I/O (see DESIGN.md section 3)."""

from raft3d.consensus.config import CoreConfig
from raft3d.consensus.core import RaftCore
from raft3d.consensus.types import (
    TRANSFER_CONTEXT,
    ConfState,
    CoreStatus,
    Entry,
    EntryTooLargeError,
    EntryType,
    HardState,
    InitialState,
    Message,
    MsgType,
    NodeId,
    NotLeaderError,
    PeerStatus,
    RaftError,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)

__all__ = [
    "TRANSFER_CONTEXT",
    "ConfState",
    "CoreConfig",
    "CoreStatus",
    "Entry",
    "EntryTooLargeError",
    "EntryType",
    "HardState",
    "InitialState",
    "Message",
    "MsgType",
    "NodeId",
    "NotLeaderError",
    "PeerStatus",
    "RaftCore",
    "RaftError",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
]
