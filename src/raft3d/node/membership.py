"""The node's side of cluster membership: the operator's calls (add, promote, remove a
member, hand leadership over), where members are reached, and keeping the transport's peer
links in step with the configuration.

The configuration itself lives in the Raft core (``raft3d.consensus.membership``). What the
core treats as an opaque per-member context is, here, the member's addresses (``context``):
a configuration change that adds a member carries them, so every node that holds the entry
knows where to reach the new member. ``AddressBook`` gathers them from the seed
configuration, from those entries (and the configuration's contexts where the core carries
them), and from what peers say about themselves when they connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import msgpack

from raft3d.consensus import RaftCore
from raft3d.consensus.membership import (
    ConfChange,
    ConfChangeType,
    NoCommitInTermError,
    UnknownMemberError,
    decode_conf_entry,
)
from raft3d.consensus.types import (
    ConfState,
    Entry,
    EntryType,
    InitialState,
    NotLeaderError,
    Ready,
    Role,
    SnapshotMeta,
)
from raft3d.node.errors import (
    MemberExistsError,
    OutcomeUnknownError,
    TransferRefusedError,
    WouldLoseQuorumError,
    address_in_use,
)
from raft3d.node.options import MemberAddress, NodeOptions
from raft3d.node.ready import ReadyStep
from raft3d.node.recovery import DataDirMarks, RecoveryGate
from raft3d.node.seams import Transport
from raft3d.node.status import MemberInfo, Membership, NodeStatus, node_status
from raft3d.transport.wire import HandshakeInfo

log = logging.getLogger("raft3d.node")

T = TypeVar("T")

# How often the peer links are checked against the configuration besides on every change
# (a removed peer is dropped only once it has learned of its removal).
_RESYNC_S = 0.25


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


def _suffrage(conf: ConfState, node: str, was_member: bool) -> str:
    if node in conf.voters:
        return "voter"
    if node in conf.learners:
        return "learner"
    return "removed" if was_member else "none"


class NodeMembership:
    """``RaftNode``'s membership calls and bookkeeping (mixed into it).

    The async calls raise ``NotLeaderError`` on a non-leader (the HTTP layer forwards them
    like writes) and ``NodeStoppedError`` once the node stops.
    """

    options: NodeOptions
    transport: Transport
    _wakeup: asyncio.Event
    _book: AddressBook
    _watchers: list[asyncio.Future[None]]
    _linked: set[str]
    _was_member: bool
    _removed_logged: bool
    _last_sync: float
    cluster_id: str
    _gate: RecoveryGate
    _marks: DataDirMarks
    _peer_clusters: dict[str, str]

    # --- provided by RaftNode ---------------------------------------------------------------

    @property
    def core(self) -> RaftCore:
        raise NotImplementedError

    @property
    def node_id(self) -> str:
        raise NotImplementedError

    @property
    def step(self) -> ReadyStep[Any]:
        raise NotImplementedError

    def _check_running(self) -> None:
        raise NotImplementedError

    def _timeout(self, timeout: float | None) -> float:
        raise NotImplementedError

    # --- views ------------------------------------------------------------------------------

    @property
    def suffrage(self) -> str:
        """ "voter", "learner", "removed" or "none" (a joining node not yet added)."""
        return _suffrage(self.core.conf_state, self.node_id, self._was_member)

    @property
    def recovering(self) -> bool:
        """The node lost its log (or may have) and does not vote until it has caught up."""
        return self._gate.recovering

    def address_of(self, node: str) -> MemberAddress | None:
        return self._book.get(node)

    def membership(self) -> Membership:
        """The configuration this node has (the newest in its log, committed or not)."""
        core = self.core
        conf = core.conf_state
        leading = core.role is Role.LEADER
        match = {p.node_id: p.match_index for p in core.status().peers}

        def info(node: str, suffrage: str) -> MemberInfo:
            address = self._book.get(node)
            me = node == self.node_id
            return MemberInfo(
                node_id=node,
                raft_addr=address.raft if address else "",
                http_addr=address.http_url if address else "",
                suffrage=suffrage,
                reachable=me or self.transport.reachable(node),
                match_index=(core.last_index if me else match.get(node)) if leading else None,
            )

        members = tuple(info(v, "voter") for v in sorted(conf.voters)) + tuple(
            info(n, "learner") for n in sorted(conf.learners)
        )
        return Membership(core.conf_index, members, core.conf_index > core.commit_index)

    def status(self) -> NodeStatus:
        step = self.step
        book = self._book
        return node_status(
            self.core.status(),
            step.applied,
            step.snapshot_index,
            {n: a for n in book.nodes() if (a := book.get(n)) is not None},
            self.transport.reachable,
            suffrage=self.suffrage,
            recovering=self.recovering,
            cluster_id=self.cluster_id,
        )

    # --- changes ----------------------------------------------------------------------------

    async def add_member(
        self,
        node_id: str,
        raft_addr: str,
        http_addr: str,
        *,
        promote: bool = True,
        timeout: float | None = None,
    ) -> Membership:
        """Add ``node_id`` as a learner (promoted to voter by the leader once it has caught
        up, unless ``promote`` is False); returns once the addition is committed."""
        self._leader_core()
        conf = self.core.conf_state
        if conf.is_member(node_id):
            raise MemberExistsError(node_id)
        for member in conf.members:
            address = self._book.get(member)
            if address is not None and address.raft == raft_addr:
                raise address_in_use(member, raft_addr)
        context = encode_context(raft_addr, http_addr)
        change = ConfChange(ConfChangeType.ADD_LEARNER, node_id, promote, context)
        return await self._change(change, timeout)

    async def promote_member(self, node_id: str, *, timeout: float | None = None) -> Membership:
        """Make the learner ``node_id`` a voter now; returns once that is committed."""
        self._leader_core()
        return await self._change(ConfChange(ConfChangeType.PROMOTE, node_id), timeout)

    async def remove_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        """Remove a voter or learner; returns once the removal is committed. Removing this
        node (the leader) is allowed: it hands leadership over once the removal commits.

        Refused (``WouldLoseQuorumError``) unless ``force`` when the voters that remain
        could not form a quorum of themselves from the ones reachable now."""
        core = self._leader_core()
        conf = core.conf_state
        if not conf.is_member(node_id):
            raise UnknownMemberError(node_id)
        remaining = [v for v in conf.voters if v != node_id]
        if node_id in conf.voters and remaining and not force:
            up = sum(1 for v in remaining if v == self.node_id or self.transport.reachable(v))
            quorum = len(remaining) // 2 + 1
            if up < quorum:
                raise WouldLoseQuorumError(node_id, up, quorum)
        return await self._change(ConfChange(ConfChangeType.REMOVE, node_id), timeout)

    async def transfer_leadership(
        self, target: str | None = None, *, timeout: float | None = None
    ) -> str:
        """Hand leadership to the voter ``target`` (None: the most caught-up reachable one);
        returns the new leader's id once another voter leads."""
        core = self._leader_core()
        deadline = self._deadline(timeout)
        conf = core.conf_state
        status = core.status()
        peers = {p.node_id: p for p in status.peers if p.node_id in conf.voters}
        if target == self.node_id:
            return self.node_id
        if target is None:
            if not peers:
                raise TransferRefusedError("there is no other voter to hand leadership to")
            reachable = self.transport.reachable
            best = max(peers.values(), key=lambda p: (reachable(p.node_id), p.match_index))
            target = best.node_id
        elif not conf.is_member(target):
            raise TransferRefusedError(f"node {target!r} is not a member of the cluster")
        elif target not in conf.voters:
            raise TransferRefusedError(f"node {target!r} is a learner, not a voter")
        elif peers[target].match_index + self.options.core.promote_lag < status.last_log_index:
            raise TransferRefusedError(
                f"node {target!r} is not caught up (it holds the log up to "
                f"{peers[target].match_index} of {status.last_log_index})"
            )
        core.transfer_leadership(target)
        self._wakeup.set()
        chosen = target

        def handed_over() -> str | None:
            c = self.core
            if c.role is not Role.LEADER and c.leader_id not in (None, self.node_id):
                return c.leader_id
            if c.role is Role.LEADER and c.transfer_target is None:
                raise TransferRefusedError(f"{chosen!r} did not take over in an election timeout")
            return None

        return await self._until(handed_over, deadline, f"{chosen} to take over leadership")

    # --- internals --------------------------------------------------------------------------

    def _leader_core(self) -> RaftCore:
        self._check_running()
        core = self.core
        if core.role is not Role.LEADER:
            raise NotLeaderError(core.leader_id)
        return core

    def _deadline(self, timeout: float | None) -> float:
        return asyncio.get_running_loop().time() + self._timeout(timeout)

    async def _change(self, change: ConfChange, timeout: float | None) -> Membership:
        deadline = self._deadline(timeout)
        while True:
            core = self._leader_core()
            try:
                index, term = core.propose_conf_change(change)
                break
            except NoCommitInTermError:
                # A new leader commits its no-op within a round trip: wait for it.
                if asyncio.get_running_loop().time() >= deadline:
                    raise
                await self._next_change(deadline)
        self._wakeup.set()
        log.info(
            "configuration change proposed node=%s change=%s member=%s index=%d term=%d",
            self.node_id,
            change.type.name.lower(),
            change.node_id,
            index,
            term,
        )

        def committed() -> bool | None:
            c = self.core
            if c.commit_index >= index:
                at = c.term_at(index)
                if at is None or at == term:
                    return True
                raise OutcomeUnknownError(index, term)
            if c.term != term:
                raise OutcomeUnknownError(index, term)
            return None

        await self._until(committed, deadline, f"configuration entry {index} to commit")
        return self.membership()

    async def _until(self, condition: Callable[[], T | None], deadline: float, what: str) -> T:
        """Check ``condition`` after every turn of the node's loop until it returns a value."""
        loop = asyncio.get_running_loop()
        while True:
            self._check_running()
            result = condition()
            if result is not None:
                return result
            if loop.time() >= deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await self._next_change(deadline)

    async def _next_change(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._watchers.append(future)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, max(0.0, deadline - loop.time()))

    def _wake_watchers(self) -> None:
        watchers, self._watchers = self._watchers, []
        for future in watchers:
            if not future.done():
                future.set_result(None)

    # --- the driver's hooks -------------------------------------------------------------------

    def _membership_start(self, state: InitialState) -> None:
        options = self.options
        self._marks = marks = DataDirMarks(options.data_dir, self.node_id)
        self._gate = RecoveryGate(self.node_id, options.core.voters, marks, self._wakeup.set)
        self._gate.start(state, options.joining)
        self._peer_clusters = {}
        self.cluster_id = options.cluster_id
        if options.cluster_id and (not options.joining or marks.has_identity()):
            self.cluster_id = marks.write_identity(options.cluster_id)
        elif options.joining:
            self.cluster_id = marks.identity_cluster() or ""
        self._book = AddressBook(self.options.addresses)
        self._watchers = []
        self._linked = set(self.transport.peers)
        self._removed_logged = False
        self._last_sync = 0.0
        core = self.core
        if state.snapshot is not None:
            self._book.learn_conf(state.snapshot.meta)
        self._book.learn_entries(state.entries)
        self._was_member = self.node_id in self.options.core.voters or _ever_member(
            self.node_id, core.conf_state, state.entries
        )
        self._sync_peers()

    def _membership_ready(self, rd: Ready) -> None:
        """After a Ready was carried out: learn addresses, follow configuration changes."""
        book, gate = self._book, self._gate
        if rd.entries:
            book.learn_entries(rd.entries)
            gate.persisted(rd.entries[-1].index)
        if rd.snapshot is not None:
            book.learn_conf(rd.snapshot.meta)
            gate.persisted(rd.snapshot.meta.index)
        conf = rd.conf_state
        if conf is not None:
            book.learn_conf(conf)
            if conf.is_member(self.node_id):
                self._was_member = True
            log.info(
                "configuration node=%s voters=%s learners=%s index=%d",
                self.node_id,
                ",".join(conf.voters),
                ",".join(conf.learners),
                self.core.conf_index,
            )
            self._sync_peers()

    def _membership_turn(self) -> None:
        """After every turn of the node's loop."""
        core = self.core
        self._gate.check(core.term, core.commit_index, core.term_at)
        leader = core.leader_id
        if not self.cluster_id and leader is not None and self._peer_clusters.get(leader):
            # A joining node belongs to the cluster of the first leader that reaches it.
            self.cluster_id = self._marks.write_identity(self._peer_clusters[leader])
            log.info(
                "joined cluster node=%s cluster=%s leader=%s", self.node_id, self.cluster_id, leader
            )
        now = time.monotonic()
        if now - self._last_sync >= _RESYNC_S:
            self._sync_peers()
        self._wake_watchers()

    def handshake_info(self) -> HandshakeInfo:
        """What this node tells each peer it connects with (the transport asks)."""
        core = self.core
        own = self._book.get(self.node_id)
        formed = core.last_index > 0 or core.term > 0
        return HandshakeInfo(self.cluster_id, formed, own.raft if own else "")

    def peer_handshake(self, peer: str, info: HandshakeInfo) -> None:
        """A peer authenticated and said ``info`` about itself (the transport calls this)."""
        if info.cluster_id:
            self._peer_clusters[peer] = info.cluster_id
        self._gate.peer_said(peer, info.formed)
        if self._book.reported(peer, info.raft_addr):
            self._sync_peers()

    def _sync_peers(self) -> None:
        """Link to every member (and the leader, and peers the core still replicates to);
        drop links to the rest. A node whose removal is committed drops every link."""
        self._last_sync = time.monotonic()
        core = self.core
        conf = core.conf_state
        suffrage = self.suffrage
        want = set(conf.members) | {p.node_id for p in core.status().peers}
        if core.leader_id is not None:
            want.add(core.leader_id)
        if suffrage == "none":
            want |= self._book.nodes()  # not added yet: whoever contacts us may lead
        elif suffrage == "removed" and core.commit_index >= core.conf_index:
            want = set()
            if not self._removed_logged:
                self._removed_logged = True
                log.warning(
                    "node removed from the cluster node=%s index=%d: it no longer takes part",
                    self.node_id,
                    core.conf_index,
                )
        want.discard(self.node_id)
        transport = self.transport
        for peer in sorted(want - self._linked):
            address = self._book.get(peer)
            if transport.connect_peer(peer, address.raft if address else ""):
                self._linked.add(peer)
        for peer in sorted(self._linked - want):
            transport.drop_peer(peer)
            self._linked.discard(peer)


def _ever_member(node: str, conf: ConfState, entries: Iterable[Entry]) -> bool:
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
