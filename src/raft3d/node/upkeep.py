"""The membership bookkeeping a running node does on its own (mixed into ``RaftNode``
through ``NodeMembership``): identity and amnesia protection at start
(``raft3d.node.recovery``), learning member addresses from what it receives, adopting a
joined cluster's id, and keeping the transport's peer links in step with the
configuration: linked to every member, the leader and peers the core still replicates to;
a node whose removal is committed drops every link.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from raft3d.consensus import RaftCore
from raft3d.consensus.types import ConfState, InitialState, Ready
from raft3d.node.addresses import AddressBook, ever_member
from raft3d.node.options import NodeOptions
from raft3d.node.ready import ReadyStep
from raft3d.node.recovery import DataDirMarks, RecoveryGate
from raft3d.node.seams import Transport
from raft3d.transport.wire import HandshakeInfo

log = logging.getLogger("raft3d.node")

# How often the peer links are checked against the configuration besides on every change
# (a removed peer is dropped only once it has learned of its removal).
_RESYNC_S = 0.25


def _suffrage(conf: ConfState, node: str, was_member: bool) -> str:
    if node in conf.voters:
        return "voter"
    if node in conf.learners:
        return "learner"
    return "removed" if was_member else "none"


class MembershipUpkeep:
    """See the module."""

    options: NodeOptions
    transport: Transport
    _wakeup: asyncio.Event
    _book: AddressBook
    _watchers: list[asyncio.Future[None]]
    _linked: dict[str, str]  # peer -> the raft address it was linked at
    _was_member: bool
    _removed_at: float | None  # when this node saw its removal committed
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

    @property
    def suffrage(self) -> str:
        """ "voter", "learner", "removed" or "none" (a joining node not yet added)."""
        return _suffrage(self.core.conf_state, self.node_id, self._was_member)

    @property
    def recovering(self) -> bool:
        """The node lost its log (or may have) and does not vote until it has caught up."""
        return self._gate.recovering

    def _wake_watchers(self) -> None:
        watchers, self._watchers = self._watchers, []
        for future in watchers:
            if not future.done():
                future.set_result(None)

    # --- the driver's hooks -------------------------------------------------------------------

    def _membership_start(self, state: InitialState) -> None:
        options = self.options
        self._marks = marks = DataDirMarks(options.data_dir, self.node_id)
        self._gate = RecoveryGate(self.node_id, options.core.voters, marks, self._begin_recovery)
        self._gate.start(state, options.joining)
        self._peer_clusters = {}
        self.cluster_id = options.cluster_id
        if options.cluster_id and (not options.joining or marks.has_identity()):
            self.cluster_id = marks.write_identity(options.cluster_id)
        elif options.joining:
            self.cluster_id = marks.identity_cluster() or ""
        self._book = AddressBook(self.options.addresses)
        self._watchers = []
        self._linked = dict.fromkeys(self.transport.peers, "")
        self._removed_at = None
        self._last_sync = 0.0
        core = self.core
        if state.snapshot is not None:
            self._book.learn_conf(state.snapshot.meta)
        self._book.learn_entries(state.entries)
        self._was_member = self.node_id in self.options.core.voters or ever_member(
            self.node_id, core.conf_state, state.entries
        )
        self._sync_peers()

    def _membership_ready(self, rd: Ready) -> None:
        """After a Ready was carried out: learn addresses, follow configuration changes."""
        book = self._book
        if rd.recovered:
            self._gate.recovered()
        if rd.entries:
            book.learn_entries(rd.entries)
        if rd.snapshot is not None:
            book.learn_conf(rd.snapshot.meta)
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
        if self._gate.recovering and not core.recovering and self._gate.ticking:
            self._gate.recovered()  # Ready.recovered, or recovery ended some other way
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

    def _linger_s(self) -> float:
        core = self.options.core
        return max(1.0, 4 * core.election_ticks * self.options.tick_s)

    def _begin_recovery(self) -> None:
        self.core.begin_recovery()
        self._wakeup.set()

    def accepts_strangers(self) -> bool:
        """Whether nodes outside the configuration may connect: while this node is not added
        yet, is recovering, or follows no leader (a member added while it was away may lead
        now, and it learns of that member only from the leader's log). With a live leader
        every member it must hear from is in its configuration."""
        return self.suffrage == "none" or self.recovering or self.core.leader_id is None

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
            now = time.monotonic()
            if self._removed_at is None:
                self._removed_at = now
                log.warning(
                    "node removed from the cluster node=%s index=%d: it no longer takes part",
                    self.node_id,
                    core.conf_index,
                )
            # Linger a little: the acknowledgement of its removal may still be queued, and
            # the leader replicates to it until it has seen that.
            if now - self._removed_at >= self._linger_s():
                want = set()
        want.discard(self.node_id)
        transport = self.transport
        linked = self._linked
        for peer in sorted(want):
            address = self._book.get(peer)
            raft = address.raft if address else ""
            # New peers, and linked ones whose address the configuration changed.
            if (peer not in linked or (raft and linked[peer] != raft)) and transport.connect_peer(
                peer, raft
            ):
                linked[peer] = raft
        for peer in sorted(set(linked) - want):
            transport.drop_peer(peer)
            del linked[peer]
