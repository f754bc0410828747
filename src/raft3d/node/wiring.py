"""How a node's parts are put together from its settings."""

from __future__ import annotations

from collections.abc import Sequence

from raft3d.config import RaftSettings
from raft3d.consensus import CoreConfig, NodeId


def core_config(node_id: NodeId, voters: Sequence[NodeId], raft: RaftSettings) -> CoreConfig:
    """The Raft core's settings for ``node_id`` among ``voters``: the one place where
    ``RaftSettings`` (milliseconds, operator-facing) become core settings (ticks)."""
    return CoreConfig(
        node_id=node_id,
        voters=tuple(voters),
        election_ticks=raft.election_ticks,
        heartbeat_ticks=raft.heartbeat_ticks,
        pre_vote=raft.pre_vote,
        check_quorum=raft.check_quorum,
        max_msg_bytes=raft.max_msg_bytes,
        max_inflight_msgs=raft.max_inflight_msgs,
        max_entry_bytes=raft.max_entry_bytes,
        snapshot_chunk_bytes=raft.snapshot_chunk_bytes,
    )
