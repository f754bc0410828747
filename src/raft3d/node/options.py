"""What a node driver is configured with (built from ``Settings`` by ``build_node``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
    # Where this node's snapshots fall in each run of snapshot_threshold indexes, as a share
    # of it (``ReadyStep.snapshot_due``); None: a threshold's entries after the last one.
    snapshot_phase: float | None = None
    addresses: Mapping[str, MemberAddress] = field(default_factory=dict)
    # Identity and amnesia protection (``raft3d.node.recovery``); None: nothing on disk.
    data_dir: Path | None = None
    cluster_id: str = ""  # the seed configuration's (or the identity's); "" while joining
    joining: bool = False  # a blank node that waits to be added to an existing cluster

    @property
    def node_id(self) -> str:
        return self.core.node_id
