"""The node's side of cluster membership, the operator's calls: the configuration as seen
here (``membership``), adding, promoting and removing a member, handing leadership over.

The configuration itself lives in the Raft core (``raft3d.consensus.membership``); member
addresses travel as its contexts (``raft3d.node.addresses``); what a running node does on
its own as the configuration changes is in ``raft3d.node.upkeep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

from raft3d.consensus import RaftCore
from raft3d.consensus.membership import (
    ConfChange,
    ConfChangeType,
    NoCommitInTermError,
    UnknownMemberError,
)
from raft3d.consensus.types import NotLeaderError, Role
from raft3d.node.addresses import encode_context
from raft3d.node.errors import (
    LearnerNotCaughtUpError,
    MemberExistsError,
    OutcomeUnknownError,
    TransferRefusedError,
    WouldLoseQuorumError,
    address_in_use,
)
from raft3d.node.options import MemberAddress
from raft3d.node.status import MemberInfo, Membership, NodeStatus, node_status
from raft3d.node.upkeep import MembershipUpkeep

log = logging.getLogger("raft3d.node")

T = TypeVar("T")


class NodeMembership(MembershipUpkeep):
    """``RaftNode``'s membership calls (mixed into it).

    The async calls raise ``NotLeaderError`` on a non-leader (the HTTP layer forwards them
    like writes) and ``NodeStoppedError`` once the node stops.
    """

    # --- views ------------------------------------------------------------------------------

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

    async def promote_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        """Make the learner ``node_id`` a voter now; returns once that is committed.

        Refused (``LearnerNotCaughtUpError``) unless ``force`` when the learner is not
        reachable, does not hold the entry that put the configuration in force, or trails the
        leader's log by more than ``promote_lag``: the rule automatic promotion follows."""
        core = self._leader_core()
        conf = core.conf_state
        if node_id in conf.learners and not force:
            match = {p.node_id: p.match_index for p in core.status().peers}.get(node_id, 0)
            last = core.last_index
            behind = match < core.conf_index or match + self.options.core.promote_lag < last
            if behind or not self.transport.reachable(node_id):
                raise LearnerNotCaughtUpError(node_id, match, last)
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
