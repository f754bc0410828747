"""Static settings of one Raft core.

The defaults a node runs with live in ``raft3d.config.RaftSettings``; the node builds a
``CoreConfig`` from them in one place (``raft3d.node.wiring.core_config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from raft3d.consensus.types import ConfState, NodeId, sort_contexts


@dataclass(frozen=True)
class CoreConfig:
    node_id: NodeId
    # The voters a new cluster starts with (used until the log or a snapshot holds a
    # configuration); empty for a node that joins an existing cluster.
    voters: tuple[NodeId, ...]
    election_ticks: int  # election timeout is randomized in [this, 2 * this)
    heartbeat_ticks: int
    pre_vote: bool
    check_quorum: bool
    max_msg_bytes: int  # entry bytes per APP message (one entry always fits)
    max_inflight_msgs: int  # un-acked APP messages per follower in replicate state
    max_entry_bytes: int
    snapshot_chunk_bytes: int
    max_committed_bytes_per_ready: int = 4 * 1024 * 1024  # not a node setting
    promote_lag: int = 16  # a learner this close to the leader's last index is promoted
    # Entries kept in the log below a snapshot taken by ``compact``, so that a follower
    # slightly behind is sent entries rather than the whole snapshot.
    trailing_entries: int = 0
    # The bootstrap voters' contexts (opaque to the core; the driver's member addresses),
    # carried by the bootstrap configuration. Keys must be among ``voters``.
    voter_contexts: Mapping[NodeId, bytes] = field(default_factory=dict, hash=False)
    # A follower whose link to the leader breaks campaigns within this many ticks (at random,
    # so that two followers that lost the same leader rarely split the vote); 0: within three
    # heartbeats. Kept apart from the heartbeat so that a longer heartbeat (cheaper idle
    # nodes) does not slow down failover when a leader's process dies.
    lost_leader_ticks: int = 0
    # Start in recovery mode (see ``recovery``): the node lost its log, so it must not vote
    # or campaign until a leader has brought it back up to date.
    recovering: bool = False

    def bootstrap_conf(self) -> ConfState:
        """The configuration a new cluster starts from, before its log holds any."""
        return ConfState(self.voters, contexts=sort_contexts(self.voter_contexts.items()))

    def __post_init__(self) -> None:
        if len(set(self.voters)) != len(self.voters):
            raise ValueError("voters must be distinct node ids")
        strangers = set(self.voter_contexts) - set(self.voters)
        if strangers:
            raise ValueError(f"voter_contexts names non-voters: {sorted(strangers)}")
        if self.promote_lag < 0:
            raise ValueError("promote_lag must not be negative")
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
        if self.lost_leader_ticks < 0:
            raise ValueError("lost_leader_ticks must not be negative")
        if self.trailing_entries < 0:
            raise ValueError("trailing_entries must not be negative")
