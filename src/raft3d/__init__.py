"""Raft3D: a Raft-replicated print-farm manager."""

__version__ = "0.1.0"
