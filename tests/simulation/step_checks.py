"""The checks the safety checker runs after every step of virtual time, over the whole
cluster at once rather than on one node's input: the newest committed entry is still durable
on a majority, no log holds two uncommitted configuration changes, no follower lost an entry
it acknowledged to its current leader, and no node that holds the newest committed entry
would vote for one that lacks it (Leader Completeness, prospectively). ``checker`` states
every invariant; ``checker.SafetyChecker`` combines this part with its per-node hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from raft3d.consensus import EntryType, NodeId, Role

from .sim_node import SimNode


class StepChecks:
    """The end-of-step part of ``checker.SafetyChecker`` (which sets every attribute here)."""

    _nodes: dict[NodeId, SimNode]
    _all: list[SimNode]
    _entries: dict[tuple[int, int], tuple[bytes, EntryType, int]]
    ledger_terms: list[int]
    _ledger_voters: list[tuple[NodeId, ...]]

    if TYPE_CHECKING:  # implemented by checker.SafetyChecker

        def _fail(self, what: str) -> None:
            raise NotImplementedError

        def _ghost_holds(self, node: NodeId, index: int, term: int) -> bool:
            raise NotImplementedError

        def _short_of_majority(self, index: int, term: int, voters: tuple[NodeId, ...]) -> str:
            raise NotImplementedError

    def end_of_step(self) -> None:
        self._check_committed_still_durable()
        self._check_one_change_in_flight()
        self._check_acknowledged_entries_kept()
        self._check_no_unfit_leader_possible()

    def _log_view(self, node: SimNode) -> tuple[int, int, int, Callable[[int], int | None]]:
        """(last index, last term, snapshot index, term_at) of the node's log: its core's if
        it runs, else what it will recover from its durable storage."""
        core = node.core
        if core is not None:
            last = core.last_index
            last_term = core.term_at(last)
            assert last_term is not None
            return last, last_term, core.snapshot_index, core.term_at
        storage = node.storage
        last = storage.last_index
        last_term = storage.term_at(last)
        assert last_term is not None
        return last, last_term, storage.snapshot_index, storage.term_at

    def _check_no_unfit_leader_possible(self) -> None:
        """Leader Completeness, prospectively: no node that holds the newest committed entry
        would grant its vote (on log grounds) to a node that lacks it. This follows from
        Raft's safety proof (the newest committed entry is always of the term that committed
        it) and catches an unsafe commit before a later election exploits it."""
        known = len(self.ledger_terms)
        if not known:
            return
        term = self.ledger_terms[-1]
        holders: list[tuple[NodeId, int, int]] = []
        lacking: list[tuple[NodeId, int, int]] = []
        for node in self._all:
            last, last_term, snap_index, term_at = self._log_view(node)
            if known <= snap_index or term_at(known) == term:
                holders.append((node.node_id, last, last_term))
            else:
                lacking.append((node.node_id, last, last_term))
        for candidate, c_last, c_term in lacking:
            for voter, v_last, v_term in holders:
                if c_term > v_term or (c_term == v_term and c_last >= v_last):
                    self._fail(
                        f"{voter} holds committed entry {known} (term {term}) yet would vote "
                        f"for {candidate}, which lacks it (logs end at ({v_last}, {v_term}) "
                        f"and ({c_last}, {c_term}))"
                    )

    def _check_acknowledged_entries_kept(self) -> None:
        """A follower never loses an entry it acknowledged to the leader of its current term
        (in memory or on disk): the leader counts that acknowledgement toward commits."""
        for node in self._all:
            leader = node.core
            if leader is None or leader.role is not Role.LEADER:
                continue
            term = leader.term
            for peer in leader.status().peers:
                match = peer.match_index
                follower = self._nodes[peer.node_id].core
                if (
                    match == 0
                    or follower is None
                    or follower.term != term
                    or match <= follower.snapshot_index
                ):
                    continue
                expected = leader.term_at(match)
                if (
                    expected is not None
                    and follower.term_at(match) != expected
                    and not self._ghost_holds(peer.node_id, match, expected)
                ):
                    self._fail(
                        f"{peer.node_id} acknowledged entry {match} (term {expected}) to "
                        f"{node.node_id} in term {term} but no longer has it"
                    )

    def _check_committed_still_durable(self) -> None:
        known = len(self.ledger_terms)
        if known:
            term = self.ledger_terms[-1]
            short = self._short_of_majority(known, term, self._ledger_voters[-1])
            if short:
                self._fail(f"committed entry {known} (term {term}) is now {short}")

    def _check_one_change_in_flight(self) -> None:
        """No log holds two configuration changes beyond the known commit point."""
        known = len(self.ledger_terms)
        registry = self._entries
        for node in self._all:
            core = node.core
            if core is None:
                continue
            changes = []
            for index in range(max(known, core.snapshot_index) + 1, core.last_index + 1):
                term = core.term_at(index)
                assert term is not None
                item = registry.get((index, term))
                if item is not None and item[1] is EntryType.CONF_CHANGE:
                    changes.append(index)
            if len(changes) > 1:
                self._fail(
                    f"{node.node_id} holds uncommitted configuration changes at {changes}: "
                    "two changes in flight"
                )
