"""The Ready loop of ``RaftCore``: ``has_ready``, ``ready`` and ``advance``, through which every
effect on the outside world leaves the core (see ``types.Ready``).

Durability rules the core relies on, all guaranteed by the Ready contract (persist, then
send):

- every message leaves in the Ready that was built after the state it depends on, so a vote
  grant goes out with (or after) the hard state that records it and a follower's APP_RESP
  with (or after) the entries it acknowledges;
- messages stamped with a term older than the current one are dropped when the Ready is
  built: events overtook them (a node whose log a newer leader rewrote does not send the old
  leader an acknowledgement of entries it no longer has);
- the leader counts its own copy of an entry toward the commit quorum only once the Ready
  that carried it has been advanced (``_own_match``), so the leader may even send its APPs
  before its own write finished.

Only one Ready may be outstanding: ``has_ready()`` is False between ``ready()`` and
``advance()``, while ``tick``/``step``/``propose`` may still be called in between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raft3d.consensus.parts import CoreParts
from raft3d.consensus.types import ConfState, HardState, Message, Ready, Role


class ReadyLoop(CoreParts):
    _applied: int
    _conf: ConfState
    _conf_changed: bool
    _recovered_pending: bool
    _last_hard_state: HardState
    _msgs: list[Message]
    _ready_outstanding: bool

    if TYPE_CHECKING:  # implemented by another part

        def _flush_leader_messages(self) -> None:
            raise NotImplementedError

        def _forget_departed(self) -> None:
            raise NotImplementedError

        def _removed_self_committed(self) -> bool:
            raise NotImplementedError

        def _hand_over(self) -> None:
            raise NotImplementedError

        def _maybe_commit(self) -> None:
            raise NotImplementedError

    def has_ready(self) -> bool:
        if self._ready_outstanding:
            return False
        if (
            self._msgs
            or self._read_states
            or self._conf_changed
            or self._append_due
            or self._commit_changed
            or self._read_heartbeat_due
            or self._received_snapshot is not None
            or self._recovered_pending
        ):
            return True
        log = self._log
        if log.has_unstable() or log.committed > self._applying:
            return True
        hard = self._last_hard_state
        return hard.term != self._term or hard.vote != self._vote or hard.commit != log.committed

    def ready(self) -> Ready:
        if self._ready_outstanding:
            raise RuntimeError("advance() the previous Ready before asking for another")
        if self._role is Role.LEADER:
            self._flush_leader_messages()
            self._forget_departed()
            if self._removed_self_committed():
                self._hand_over()
        log = self._log
        rd = Ready()
        if self._conf_changed:
            self._conf_changed = False
            rd.conf_state = self._conf
        if self._recovered_pending:
            self._recovered_pending = False
            rd.recovered = True
        unstable = log.unstable_entries()
        if unstable:
            rd.entries = unstable
            log.mark_emitted(unstable[-1].index)
        hard = self._last_hard_state
        if hard.term != self._term or hard.vote != self._vote or hard.commit != log.committed:
            hard = HardState(self._term, self._vote, log.committed)
            rd.hard_state = hard
            self._last_hard_state = hard
        if self._received_snapshot is not None:
            rd.snapshot = self._received_snapshot
            self._received_snapshot = None
        if log.committed > self._applying:
            committed = log.entries_between(
                self._applying + 1, log.committed, self._cfg.max_committed_bytes_per_ready
            )
            rd.committed_entries = committed
            self._applying = committed[-1].index
        if self._msgs:
            rd.messages = self._current_messages(self._msgs)
            self._msgs = []
        if self._read_states:
            rd.read_states = self._read_states
            self._read_states = []
        self._ready_outstanding = True
        return rd

    def advance(self, ready: Ready) -> None:
        """The driver persisted ``ready``, sent its messages and applied its entries."""
        if not self._ready_outstanding:
            raise RuntimeError("advance() without an outstanding Ready")
        self._ready_outstanding = False
        if ready.snapshot is not None:
            self._applied = max(self._applied, ready.snapshot.meta.index)
        if ready.committed_entries:
            self._applied = max(self._applied, ready.committed_entries[-1].index)
        if ready.entries:
            last = ready.entries[-1]
            self._log.stable_to(last.index, last.term)
            if self._role is Role.LEADER:
                self._maybe_commit()
        self._maybe_end_recovery()

    def _current_messages(self, msgs: list[Message]) -> list[Message]:
        """Drop messages stamped with a term older than ours: events overtook them (e.g. an
        acknowledgement of entries that a newer leader has since replaced). Dropping a
        message is always safe in Raft."""
        term = self._term
        return [m for m in msgs if m.term >= term]
