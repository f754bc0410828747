"""Peer-to-peer transport: Raft messages between nodes over authenticated TCP."""

from raft3d.transport.stats import DROP_REASONS
from raft3d.transport.transport import Transport

__all__ = ["DROP_REASONS", "Transport"]
