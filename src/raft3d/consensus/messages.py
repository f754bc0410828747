"""Raft messages and their wire format, which every layer agrees on: plain msgpack of a
positional array (``Message.to_wire`` / ``Message.from_wire``); the decoding refuses anything
malformed with ``ValueError``. ``types`` re-exports them all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import msgpack

from raft3d.consensus.records import (
    Contexts,
    Entry,
    EntryType,
    NodeId,
    SnapshotMeta,
    sort_contexts,
)


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
