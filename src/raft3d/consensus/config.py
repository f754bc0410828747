"""Static settings of one Raft core."""

from __future__ import annotations

from dataclasses import dataclass

from raft3d.consensus.types import NodeId


@dataclass(frozen=True)
class CoreConfig:
    node_id: NodeId
    voters: tuple[NodeId, ...]  # every voter, this node included
    election_ticks: int = 30  # election timeout is randomized in [this, 2 * this)
    heartbeat_ticks: int = 5
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_bytes: int = 1024 * 1024  # entry bytes per APP message (one entry always fits)
    max_inflight_msgs: int = 256  # un-acked APP messages per follower in replicate state
    max_entry_bytes: int = 64 * 1024
    snapshot_chunk_bytes: int = 256 * 1024
    max_committed_bytes_per_ready: int = 4 * 1024 * 1024
    # Entries kept in the log below a snapshot taken by ``compact``, so that a follower
    # slightly behind is sent entries rather than the whole snapshot.
    trailing_entries: int = 0

    def __post_init__(self) -> None:
        if not self.voters or len(set(self.voters)) != len(self.voters):
            raise ValueError("voters must be a non-empty tuple of distinct node ids")
        if self.node_id not in self.voters:
            raise ValueError(f"node {self.node_id!r} is not among the voters")
        if self.heartbeat_ticks < 1 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 1 <= heartbeat_ticks < election_ticks")
        for name in (
            "max_msg_bytes",
            "max_inflight_msgs",
            "snapshot_chunk_bytes",
            "max_committed_bytes_per_ready",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.max_entry_bytes < 0:
            raise ValueError("max_entry_bytes must not be negative")
        if self.trailing_entries < 0:
            raise ValueError("trailing_entries must not be negative")

    @property
    def quorum(self) -> int:
        """Strict majority of the voters."""
        return len(self.voters) // 2 + 1
