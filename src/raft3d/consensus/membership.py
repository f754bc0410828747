"""Cluster membership: which nodes vote, which only replicate, and how that changes.

The configuration is part of the replicated log. A change is one ``CONF_CHANGE`` entry
whose payload holds both the change and the whole configuration that results from it, so
recovering the configuration is a matter of finding the newest such entry (or, if the log
has none, the snapshot's metadata, or else the bootstrap voters a new cluster starts from).

Changes follow the single-server scheme of the Raft thesis (section 4.1): one member is added
(as a learner), promoted, or removed at a time; a node uses the newest configuration in its
log as soon as it is appended, committed or not, and falls back to the previous one if the
entry is truncated away. The leader proposes a change only after it has committed an entry of
its own term and only while no other change is uncommitted (``RaftCore`` enforces both).

Learners receive the log but never vote and never count toward any quorum. A learner added
with ``auto_promote`` is promoted by the leader once it has caught up; one added without it
stays a learner until promoted by hand.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgpack

from raft3d.consensus.types import (
    ConfState,
    Entry,
    EntryType,
    NodeId,
    RaftError,
    contexts_from_wire,
    contexts_to_wire,
)


class ConfChangeType(enum.IntEnum):
    ADD_LEARNER = 1
    PROMOTE = 2  # learner -> voter
    REMOVE = 3  # voter or learner leaves the cluster


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: NodeId
    auto_promote: bool = True  # ADD_LEARNER only: promote once caught up
    context: bytes = b""  # opaque to the core (e.g. the member's addresses)


def apply_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The configuration after ``change``; raises ``ConfChangeError`` if it does not fit."""
    node = change.node_id
    kind = change.type
    if kind is ConfChangeType.ADD_LEARNER:
        if conf.is_member(node):
            raise MemberExistsError(node)
        manual = conf.manual if change.auto_promote else (*conf.manual, node)
        contexts = conf.with_context(node, change.context)
        return ConfState(conf.voters, (*conf.learners, node), manual, contexts)
    if kind is ConfChangeType.PROMOTE:
        if node in conf.voters:
            raise ConfChangeError(f"node {node!r} is already a voter")
        if node not in conf.learners:
            raise UnknownMemberError(node)
        return ConfState(
            (*conf.voters, node),
            tuple(n for n in conf.learners if n != node),
            tuple(n for n in conf.manual if n != node),
            conf.contexts,  # a promoted member keeps its context
        )
    if not conf.is_member(node):
        raise UnknownMemberError(node)
    if conf.voters == (node,):
        raise ConfChangeError(f"cannot remove {node!r}: it is the last voter")
    return ConfState(
        tuple(n for n in conf.voters if n != node),
        tuple(n for n in conf.learners if n != node),
        tuple(n for n in conf.manual if n != node),
        conf.without_context(node),
    )


def encode_conf_entry(change: ConfChange, state: ConfState) -> bytes:
    return msgpack.packb(  # type: ignore[no-any-return]
        (
            int(change.type),
            change.node_id,
            change.auto_promote,
            change.context,
            list(state.voters),
            list(state.learners),
            list(state.manual),
            contexts_to_wire(state.contexts),
        ),
        use_bin_type=True,
    )


def decode_conf_entry(data: bytes) -> tuple[ConfChange, ConfState]:
    """Decode a CONF_CHANGE entry's payload; raises ``ValueError`` if it is malformed."""
    try:
        # Entries written before member contexts existed have no eighth field.
        kind, node, auto, context, voters, learners, manual, *rest = msgpack.unpackb(
            data, raw=False, use_list=True
        )
        change = ConfChange(ConfChangeType(kind), str(node), bool(auto), bytes(context))
        state = ConfState(
            tuple(str(v) for v in voters),
            tuple(str(v) for v in learners),
            tuple(str(v) for v in manual),
            contexts_from_wire(rest[0]) if rest else (),
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"malformed configuration entry: {exc}") from exc
    return change, state


class ConfTracker:
    """The configuration entries of one node's live log, on top of a base configuration (the
    snapshot's, or the bootstrap one at index 0). The newest one is in effect."""

    __slots__ = ("_base", "_base_index", "_entries")

    def __init__(self, base: ConfState, base_index: int) -> None:
        self._base = base
        self._base_index = base_index
        self._entries: list[tuple[int, ConfState]] = []  # (log index, config), ascending

    @property
    def current(self) -> ConfState:
        return self._entries[-1][1] if self._entries else self._base

    @property
    def index(self) -> int:
        """Log index of the entry that produced the current configuration."""
        return self._entries[-1][0] if self._entries else self._base_index

    def state_at(self, index: int) -> ConfState:
        """The configuration in effect once the log is applied up to ``index``."""
        state = self._base
        for at, conf in self._entries:
            if at > index:
                break
            state = conf
        return state

    def on_entries(self, entries: list[Entry]) -> bool:
        """Entries were appended to the log; True if the configuration changed."""
        changed = False
        for entry in entries:
            if entry.type is EntryType.CONF_CHANGE:
                try:
                    _, state = decode_conf_entry(entry.data)
                except ValueError:
                    continue  # a correct leader never writes one; keep the config we have
                self._entries.append((entry.index, state))
                changed = True
        return changed

    def truncate_from(self, index: int) -> bool:
        """Entries at or after ``index`` left the log; True if the configuration changed."""
        keep = [item for item in self._entries if item[0] < index]
        changed = len(keep) != len(self._entries)
        self._entries = keep
        return changed

    def compact(self, index: int) -> None:
        """The log up to ``index`` became a snapshot."""
        self._base = self.state_at(index)
        self._base_index = max([self._base_index] + [at for at, _ in self._entries if at <= index])
        self._entries = [item for item in self._entries if item[0] > index]

    def restore(self, state: ConfState, index: int) -> None:
        """The whole log was replaced by a snapshot whose configuration is ``state``."""
        self._base = state
        self._base_index = index
        self._entries = []


class ConfChangeError(RaftError):
    """A membership change that cannot be proposed now, or does not fit the configuration."""


class ConfChangeInProgressError(ConfChangeError):
    def __init__(self, index: int) -> None:
        self.index = index
        super().__init__(f"a configuration change (entry {index}) is not committed yet")


class NoCommitInTermError(ConfChangeError):
    def __init__(self) -> None:
        super().__init__("the leader has not yet committed an entry of its term; retry shortly")


class UnknownMemberError(ConfChangeError):
    def __init__(self, node: NodeId) -> None:
        self.node_id = node
        super().__init__(f"node {node!r} is not a member of the cluster")


class NotAVoterError(ConfChangeError):
    def __init__(self, node: NodeId) -> None:
        self.node_id = node
        super().__init__(f"node {node!r} is not a voter of the cluster")


class MemberExistsError(ConfChangeError):
    def __init__(self, node: NodeId) -> None:
        self.node_id = node
        super().__init__(f"node {node!r} is already a member of the cluster")


class LeadershipTransferError(RaftError):
    """Proposals (and configuration changes) are refused while the leader hands leadership
    over."""

    def __init__(self, target: NodeId) -> None:
        self.target = target
        super().__init__(f"leadership is being transferred to {target}; retry on the new leader")
