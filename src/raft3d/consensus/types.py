"""Value types shared by the Raft core, its storage and its transport.

The core (``raft3d.consensus.core``) consumes and produces only these types. They carry
opaque ``bytes`` payloads: nothing here knows what an entry means to the application.
Wire encoding lives here too (``Message.to_wire`` / ``Message.from_wire``) so that every
layer agrees on one format; it is plain msgpack of a positional array.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import msgpack

NodeId = str


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryType(enum.IntEnum):
    NORMAL = 0  # application command (opaque bytes)
    NOOP = 1  # appended by every new leader at the start of its term; data is empty
    CONF_CHANGE = 2  # a membership change (``membership.encode_conf_entry``)


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    data: bytes = b""
    type: EntryType = EntryType.NORMAL

    def size(self) -> int:
        """Approximate encoded size, used for the per-message byte cap."""
        return len(self.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: NodeId | None = None
    commit: int = 0


Contexts = tuple[tuple[NodeId, bytes], ...]


@dataclass(frozen=True, slots=True)
class ConfState:
    """One cluster configuration. Learners receive the log but never vote or count toward a
    quorum; ``manual`` lists the learners the leader does not promote automatically.
    ``contexts`` holds an opaque blob per member (the driver keeps each member's addresses
    there), as (node id, context) pairs sorted by node id; the core never reads them. An
    empty context is not stored: a member without one reads as b""."""

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()
    manual: tuple[NodeId, ...] = ()
    contexts: Contexts = ()

    def context_of(self, node: NodeId) -> bytes:
        """The member's context (b"" if it has none)."""
        for member, context in self.contexts:
            if member == node:
                return context
        return b""

    def with_context(self, node: NodeId, context: bytes) -> Contexts:
        """``contexts`` with ``node``'s set to ``context`` (kept sorted by node id)."""
        return sort_contexts((*self.without_context(node), (node, context)))

    def without_context(self, node: NodeId) -> Contexts:
        return tuple(item for item in self.contexts if item[0] != node)

    def is_voter(self, node: NodeId) -> bool:
        return node in self.voters

    def is_member(self, node: NodeId) -> bool:
        return node in self.voters or node in self.learners

    @property
    def members(self) -> tuple[NodeId, ...]:
        return self.voters + self.learners

    def quorum(self) -> int:
        """Strict majority of the voters."""
        return len(self.voters) // 2 + 1


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0  # last log index the snapshot includes
    term: int = 0  # term of that entry
    voters: tuple[NodeId, ...] = ()  # cluster configuration at ``index``
    learners: tuple[NodeId, ...] = ()
    manual: tuple[NodeId, ...] = ()  # learners not promoted automatically
    contexts: Contexts = ()  # each member's opaque context, sorted by node id

    @property
    def conf_state(self) -> ConfState:
        return ConfState(self.voters, self.learners, self.manual, self.contexts)

    @classmethod
    def of(cls, index: int, term: int, conf: ConfState) -> SnapshotMeta:
        return cls(index, term, conf.voters, conf.learners, conf.manual, conf.contexts)


def sort_contexts(items: Iterable[tuple[NodeId, bytes]]) -> Contexts:
    """Contexts in their canonical order (by node id), one per node, empty ones left out."""
    return tuple(sorted((node, ctx) for node, ctx in dict(items).items() if ctx))


def contexts_to_wire(contexts: Contexts) -> list[list[object]]:
    return [[node, context] for node, context in contexts]


def contexts_from_wire(value: object) -> Contexts:
    """Decode what ``contexts_to_wire`` produced; raises ``ValueError`` if malformed."""
    if not isinstance(value, list):
        raise ValueError("expected a list of member contexts")
    pairs = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError("expected a (node id, context) pair")
        pairs.append((_str(item[0]), _bytes(item[1])))
    if len({node for node, _ in pairs}) != len(pairs):
        raise ValueError("a node id appears twice among the member contexts")
    return sort_contexts(pairs)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


class SnapshotData(Protocol):
    """A snapshot's data read by byte range: ``bytes`` (in memory: the simulation, a snapshot
    not yet durable), or a view of its durable file read chunk by chunk, so that a leader
    serving laggards does not hold the whole snapshot in memory (``RaftCore.serve_from``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ServedSnapshot:
    """The snapshot the core sends laggards (InstallSnapshot chunks)."""

    meta: SnapshotMeta
    data: SnapshotData

    @classmethod
    def of(cls, snapshot: Snapshot) -> ServedSnapshot:
        return cls(snapshot.meta, snapshot.data)


class MsgType(enum.IntEnum):
    APP = 1  # AppendEntries (also carries the leader's commit index)
    APP_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7  # carries commit (capped at the follower's match) and an optional read ctx
    HEARTBEAT_RESP = 8
    SNAP = 9  # one chunk of an InstallSnapshot transfer
    SNAP_RESP = 10
    READ_INDEX = 11  # follower -> leader: confirm leadership for ``context``
    READ_INDEX_RESP = 12  # leader -> follower: ``index`` is safe to read at for ``context``
    TIMEOUT_NOW = 13  # leader -> transfer target: campaign at once (leadership transfer)


TRANSFER_CONTEXT = b"transfer"


@dataclass(slots=True)
class Message:
    """One Raft message. Field use depends on ``type`` (as in etcd-io/raft's raftpb.Message).

    - APP: ``log_term``/``index`` identify the entry preceding ``entries``; ``commit``.
    - APP_RESP: ``index`` is the last index appended (accept) or the rejected index;
      ``reject_hint`` and ``log_term`` are the follower's conflict hint on reject.
    - VOTE/PRE_VOTE: ``log_term``/``index`` describe the candidate's last entry.
      PRE_VOTE carries the term the candidate *would* campaign in.
    - SNAP: ``snapshot_meta``, ``offset`` into the snapshot bytes, ``data`` the chunk,
      ``done`` on the last chunk. SNAP_RESP: ``index`` is the snapshot index, ``offset`` the
      next byte expected, ``reject`` if the transfer must restart.
    - HEARTBEAT/HEARTBEAT_RESP/READ_INDEX/READ_INDEX_RESP: ``context`` carries a read request id.
    - VOTE with ``context == TRANSFER_CONTEXT``: the election follows a leadership transfer,
      so voters do not refuse it for having heard from a live leader recently.
    """

    type: MsgType
    to: NodeId
    frm: NodeId
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: list[Entry] = field(default_factory=list)
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot_meta: SnapshotMeta | None = None
    offset: int = 0
    data: bytes = b""
    done: bool = False

    def to_wire(self) -> bytes:
        entries = [(e.index, e.term, int(e.type), e.data) for e in self.entries]
        meta = (
            None
            if self.snapshot_meta is None
            else (
                self.snapshot_meta.index,
                self.snapshot_meta.term,
                list(self.snapshot_meta.voters),
                list(self.snapshot_meta.learners),
                list(self.snapshot_meta.manual),
                contexts_to_wire(self.snapshot_meta.contexts),
            )
        )
        return msgpack.packb(  # type: ignore[no-any-return]
            (
                int(self.type),
                self.to,
                self.frm,
                self.term,
                self.log_term,
                self.index,
                entries,
                self.commit,
                self.reject,
                self.reject_hint,
                self.context,
                meta,
                self.offset,
                self.data,
                self.done,
            ),
            use_bin_type=True,
        )

    @classmethod
    def from_wire(cls, raw: bytes) -> Message:
        """Decode a message; raises ``ValueError`` for anything malformed."""
        try:
            fields = msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=True)
            (
                mtype,
                to,
                frm,
                term,
                log_term,
                index,
                entries,
                commit,
                reject,
                reject_hint,
                context,
                meta,
                offset,
                data,
                done,
            ) = fields
            msg = cls(
                type=MsgType(mtype),
                to=_str(to),
                frm=_str(frm),
                term=_uint(term),
                log_term=_uint(log_term),
                index=_uint(index),
                entries=[
                    Entry(_uint(i), _uint(t), _bytes(d), EntryType(et)) for i, t, et, d in entries
                ],
                commit=_uint(commit),
                reject=_bool(reject),
                reject_hint=_uint(reject_hint),
                context=_bytes(context),
                snapshot_meta=None if meta is None else _meta(meta),
                offset=_uint(offset),
                data=_bytes(data),
                done=_bool(done),
            )
        except (ValueError, TypeError, KeyError, IndexError, msgpack.UnpackException) as exc:
            raise ValueError(f"malformed raft message: {exc}") from exc
        return msg


def _meta(fields: list[object]) -> SnapshotMeta:
    # learners, manual and contexts are absent in messages of older senders
    index, term, voters, *rest = fields
    learners, manual, contexts = [*rest, [], [], []][:3]
    return SnapshotMeta(
        _uint(index),
        _uint(term),
        _names(voters),
        _names(learners),
        _names(manual),
        contexts_from_wire(contexts),
    )


def _names(v: object) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ValueError("expected a list of node ids")
    return tuple(_str(name) for name in v)


def _uint(v: object) -> int:
    if type(v) is not int or v < 0:
        raise ValueError("expected a non-negative integer")
    return v


def _str(v: object) -> str:
    if type(v) is not str:
        raise ValueError("expected a string")
    return v


def _bytes(v: object) -> bytes:
    if type(v) is not bytes:
        raise ValueError("expected bytes")
    return v


def _bool(v: object) -> bool:
    if type(v) is not bool:
        raise ValueError("expected a boolean")
    return v


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
