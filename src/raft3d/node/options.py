"""What a node driver is configured with (built from ``Settings`` by ``build_node``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from raft3d.consensus import CoreConfig


@dataclass(frozen=True, slots=True)
class MemberAddress:
    """Where a member is reached, as shown in status views."""

    raft: str  # "host:port"
    http_url: str  # "http://host:port"


@dataclass(frozen=True, slots=True)
class NodeOptions:
    core: CoreConfig
    tick_s: float
    snapshot_threshold: int  # applied entries between automatic snapshots; 0: never
    default_timeout_s: float  # for propose/read_barrier called without a timeout
    read_retry_s: float = 0.1  # a ReadIndex unanswered this long is asked again
    # ...and only once their log bytes reach this share of the last snapshot's size.
    snapshot_log_ratio: float = 0.0
    addresses: Mapping[str, MemberAddress] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return self.core.node_id
