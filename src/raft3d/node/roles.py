"""Noticing role, term and leader changes between two looks at the core: logs, the election
counter, and proposals whose term ended."""

from __future__ import annotations

import logging
from collections.abc import Callable

from raft3d.consensus import RaftCore
from raft3d.consensus.types import Role
from raft3d.node.ready import NodeCounters

log = logging.getLogger("raft3d.node")


class RoleWatch:
    def __init__(
        self,
        node_id: str,
        term: int,
        counters: NodeCounters,
        on_term_end: Callable[[int | None], None],
    ) -> None:
        """``on_term_end(keep_term)`` runs when this node stops leading a term: proposals of
        other terms than ``keep_term`` (None: of every term) are then in doubt."""
        self._node_id = node_id
        self._counters = counters
        self._on_term_end = on_term_end
        self._role = Role.FOLLOWER
        self._leader: str | None = None
        self._term = term

    def changed(self, core: RaftCore) -> bool:
        """Whether ``observe`` has something to report."""
        return (
            core.role is not self._role or core.term != self._term or core.leader_id != self._leader
        )

    def observe(self, core: RaftCore) -> None:
        role, term, leader = core.role, core.term, core.leader_id
        last_role, last_term = self._role, self._term
        if role is last_role and term == last_term and leader == self._leader:
            return
        node_id = self._node_id
        # A single voter wins before the loop ever sees it campaigning: a new term entered
        # as leader is an election too.
        campaigning = role is Role.CANDIDATE and (
            last_role is not Role.CANDIDATE or term != last_term
        )
        if campaigning or (role is Role.LEADER and term != last_term):
            self._counters.elections += 1
            log.info("election started node=%s term=%d index=%d", node_id, term, core.last_index)
        if role is not last_role:
            log.info(
                "role changed node=%s term=%d from=%s to=%s leader=%s commit=%d",
                node_id,
                term,
                last_role.value,
                role.value,
                leader,
                core.commit_index,
            )
        elif leader != self._leader:
            log.info("leader changed node=%s term=%d leader=%s", node_id, term, leader)
        if last_role is Role.LEADER and (role is not Role.LEADER or term != last_term):
            # Proposals of the current term survive if we lead it (we may have lost and won
            # leadership again between two looks); those of ended terms are in doubt.
            self._on_term_end(term if role is Role.LEADER else None)
        self._role, self._term, self._leader = role, term, leader
