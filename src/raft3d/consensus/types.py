"""Value types shared by the Raft core, its storage and its transport.

The core (``raft3d.consensus.core``) consumes and produces only these types. They carry
opaque ``bytes`` payloads: nothing here knows what an entry means to the application.
This module holds what the core takes in and gives out (``InitialState``, ``Ready``,
``CoreStatus``) and its errors, and re-exports the records it keeps (``records``: entries,
hard state, configurations, snapshots) and its messages with their wire format
(``messages``), so that every layer imports them from one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Re-exported: every layer imports the records and messages from here.
from raft3d.consensus.messages import TRANSFER_CONTEXT as TRANSFER_CONTEXT
from raft3d.consensus.messages import Message as Message
from raft3d.consensus.messages import MsgType as MsgType
from raft3d.consensus.messages import contexts_from_wire as contexts_from_wire
from raft3d.consensus.messages import contexts_to_wire as contexts_to_wire
from raft3d.consensus.records import ConfState as ConfState
from raft3d.consensus.records import Contexts as Contexts
from raft3d.consensus.records import Entry as Entry
from raft3d.consensus.records import EntryType as EntryType
from raft3d.consensus.records import HardState as HardState
from raft3d.consensus.records import NodeId as NodeId
from raft3d.consensus.records import ServedSnapshot as ServedSnapshot
from raft3d.consensus.records import Snapshot as Snapshot
from raft3d.consensus.records import SnapshotData as SnapshotData
from raft3d.consensus.records import SnapshotMeta as SnapshotMeta
from raft3d.consensus.records import sort_contexts as sort_contexts


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the local applied index reaches ``index``."""

    index: int
    context: bytes


@dataclass(slots=True)
class Ready:
    """Everything the driver must do, in this order, before calling ``core.advance(ready)``:

    1. Persist, in one durable transaction: ``hard_state`` (if not None), ``snapshot`` (if not
       None: a snapshot received from the leader; save it and drop the *whole* stored log, which
       it replaces), then ``entries`` (if any: delete every stored entry with index >=
       entries[0].index, then append them).
    2. Send ``messages`` (they may depend on what step 1 persisted).
    3. If ``snapshot`` is not None, restore the state machine from it.
       Then apply ``committed_entries`` in order (NOOP entries are skipped by the application
       but still advance the applied index).
    4. Release ``read_states`` (serve the read once applied index >= its index).
    5. Call ``core.advance(ready)``.
    """

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    messages: list[Message] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    # The configuration now in effect, when it changed since the previous Ready (an entry
    # appended or truncated, or a snapshot installed): the driver connects to new members
    # and drops removed ones. It may still be uncommitted.
    conf_state: ConfState | None = None
    # True, once, in the Ready where recovery mode ended (``RaftCore.begin_recovery``): the
    # node votes again once this Ready is persisted (it may carry a vote for the leader).
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class PeerStatus:
    node_id: NodeId
    match_index: int
    next_index: int
    state: str  # "probe" | "replicate" | "snapshot" (meaningful on a leader only)
    recent_active: bool
    voter: bool = True  # False for a learner


@dataclass(frozen=True, slots=True)
class CoreStatus:
    node_id: NodeId
    role: Role
    term: int
    leader_id: NodeId | None
    commit_index: int
    applied_index: int
    last_log_index: int
    snapshot_index: int
    voters: tuple[NodeId, ...]
    peers: tuple[PeerStatus, ...]
    learners: tuple[NodeId, ...] = ()
    conf_index: int = 0  # log index of the entry that set the configuration (0: bootstrap)
    transferring_to: NodeId | None = None
    recovering: bool = False  # in recovery mode: neither votes nor campaigns


class RaftError(Exception):
    """Base class of errors raised by the consensus layer."""


class NotLeaderError(RaftError):
    def __init__(self, leader_id: NodeId | None) -> None:
        self.leader_id = leader_id
        where = f"the leader is {leader_id}" if leader_id else "no leader is known"
        super().__init__(f"this node is not the leader; {where}")


class EntryTooLargeError(RaftError):
    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"entry of {size} bytes exceeds the maximum entry size of {limit} bytes")


@dataclass(slots=True)
class InitialState:
    """What a core starts from: durable state recovered by the storage layer."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None  # newest valid snapshot, if any
    entries: list[Entry] = field(default_factory=list)  # contiguous, all after the snapshot
