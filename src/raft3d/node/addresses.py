"""Where members are reached: the addresses each member's configuration context carries.

What the Raft core treats as an opaque per-member context is, for the node, the member's
addresses (``encode_context``): the configuration change that adds a member carries them,
and so does every configuration after it (``ConfState.contexts``), so every node that holds
the log or a snapshot knows where to reach every member. ``AddressBook`` gathers them, with
the seed configuration's and what peers say about themselves when they connect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgpack

from raft3d.consensus.membership import ConfChangeType, decode_conf_entry
from raft3d.consensus.types import ConfState, Entry, EntryType, SnapshotMeta
from raft3d.node.options import MemberAddress


def encode_context(raft_addr: str, http_addr: str) -> bytes:
    """A member's addresses as the configuration carries them."""
    return msgpack.packb({"raft": raft_addr, "http": http_addr})  # type: ignore[no-any-return]


def decode_context(data: bytes) -> MemberAddress | None:
    """The addresses in a member's context; None if it holds none (or is not ours)."""
    if not data:
        return None
    try:
        fields = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if not isinstance(fields, dict):
        return None
    raft, http = fields.get("raft"), fields.get("http")
    if not isinstance(raft, str) or not isinstance(http, str) or not raft:
        return None
    return MemberAddress(raft, http)


class AddressBook:
    """Where each known node is reached. Addresses from the configuration (its contexts, or
    the entry that added a member) win over the seed configuration's; those a peer reports
    itself are kept only for nodes nothing else names."""

    def __init__(self, seed: Mapping[str, MemberAddress]) -> None:
        self._known: dict[str, MemberAddress] = dict(seed)
        self._reported: dict[str, MemberAddress] = {}

    def get(self, node: str) -> MemberAddress | None:
        return self._known.get(node) or self._reported.get(node)

    def nodes(self) -> set[str]:
        return set(self._known) | set(self._reported)

    def learn(self, node: str, address: MemberAddress) -> bool:
        """Record ``address`` for ``node``; True if it changed."""
        changed = self._known.get(node) != address
        self._known[node] = address
        return changed

    def reported(self, node: str, raft_addr: str) -> bool:
        """A peer told us where it listens; True if the book changed."""
        if node in self._known or not raft_addr:
            return False
        address = MemberAddress(raft_addr, "")
        changed = self._reported.get(node) != address
        self._reported[node] = address
        return changed

    def learn_entries(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if entry.type is not EntryType.CONF_CHANGE:
                continue
            try:
                change, state = decode_conf_entry(entry.data)
            except ValueError:
                continue
            address = decode_context(change.context)
            if change.type is ConfChangeType.ADD_LEARNER and address is not None:
                self.learn(change.node_id, address)
            self.learn_conf(state)

    def learn_conf(self, conf: ConfState | SnapshotMeta) -> None:
        for node, context in conf.contexts:
            address = decode_context(context)
            if address is not None:
                self.learn(node, address)


def ever_member(node: str, conf: ConfState, entries: Iterable[Entry]) -> bool:
    if conf.is_member(node):
        return True
    for entry in entries:
        if entry.type is EntryType.CONF_CHANGE:
            try:
                _, state = decode_conf_entry(entry.data)
            except ValueError:
                continue
            if state.is_member(node):
                return True
    return False
