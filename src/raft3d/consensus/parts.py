"""What the parts of ``RaftCore`` share: the state they read and write, and the methods one
part calls on another. Each part is a mixin of its own module (``elections``, ``follower``,
``replication``, ``reconfig``, ``recovery``, ``compaction``, ``ready_loop``); ``core.RaftCore``
combines them and owns the state (its ``__init__`` sets every attribute declared here)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, TypedDict, Unpack

from raft3d.consensus.config import CoreConfig
from raft3d.consensus.log import RaftLog
from raft3d.consensus.membership import ConfTracker
from raft3d.consensus.progress import Progress
from raft3d.consensus.read_only import ReadQueue
from raft3d.consensus.snapshot_receiver import SnapshotReceiver
from raft3d.consensus.types import (
    Entry,
    Message,
    MsgType,
    NodeId,
    ReadState,
    Role,
    ServedSnapshot,
    Snapshot,
    SnapshotMeta,
)


class MessageFields(TypedDict, total=False):
    """The fields of a ``Message`` beyond type, recipient, sender and term."""

    log_term: int
    index: int
    entries: list[Entry]
    commit: int
    reject: bool
    reject_hint: int
    context: bytes
    snapshot_meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


# Messages only a leader sends; receiving one at a higher term names the new leader.
LEADER_MESSAGES = frozenset({MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP})


class CoreParts:
    _cfg: CoreConfig
    _rng: random.Random
    _id: NodeId
    _role: Role
    _term: int
    _vote: NodeId | None
    _log: RaftLog
    _confs: ConfTracker
    _voters: tuple[NodeId, ...]
    _peers: tuple[NodeId, ...]
    _snapshot: ServedSnapshot | None
    _applying: int
    _leader_id: NodeId | None
    _election_elapsed: int
    _heartbeat_elapsed: int
    _randomized_timeout: int
    _votes: dict[NodeId, bool]
    _progress: dict[NodeId, Progress]
    _reads: ReadQueue
    _reads_awaiting_commit: list[tuple[bytes, NodeId]]
    _append_due: dict[NodeId, bool]
    _commit_changed: bool
    _read_heartbeat_due: bool
    _receiver: SnapshotReceiver
    _received_snapshot: Snapshot | None
    _read_states: list[ReadState]
    _recovering: bool

    if TYPE_CHECKING:  # implemented by RaftCore or by another part

        def _send(
            self,
            mtype: MsgType,
            to: NodeId,
            *,
            term: int | None = None,
            **fields: Unpack[MessageFields],
        ) -> None:
            raise NotImplementedError

        def _become_follower(self, term: int, leader: NodeId | None) -> None:
            raise NotImplementedError

        def _become_leader(self) -> None:
            raise NotImplementedError

        def _clear_leader_state(self) -> None:
            raise NotImplementedError

        def _quorum_voters(self) -> tuple[NodeId, ...]:
            raise NotImplementedError

        def _step_follower(self, msg: Message) -> None:
            raise NotImplementedError

        def _leader_read(self, context: bytes, requester: NodeId) -> None:
            raise NotImplementedError

        # reconfig.Reconfiguration
        def _apply_conf(self) -> None:
            raise NotImplementedError

        def _tick_transfer(self) -> None:
            raise NotImplementedError

        def _maybe_promote_learners(self) -> None:
            raise NotImplementedError

        def _maybe_send_timeout_now(self, peer: NodeId) -> None:
            raise NotImplementedError

        def _on_timeout_now(self) -> None:
            raise NotImplementedError

        # recovery.Recovery
        def _recovery_heard_leader(self) -> None:
            raise NotImplementedError

        def _recovery_answer(self, msg: Message) -> bool:
            raise NotImplementedError

        def _recovery_ack_cap(self, index: int, leader_commit: int) -> int:
            raise NotImplementedError

        def _recovery_echo(self, context: bytes) -> bytes:
            raise NotImplementedError

        def _maybe_end_recovery(self) -> None:
            raise NotImplementedError

        def _recovery_request(self, peer: NodeId, pr: Progress) -> None:
            raise NotImplementedError
