"""Proposals waiting for their entry to be applied, keyed by log index."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from raft3d.node.errors import NotCommittedError, OutcomeUnknownError
from raft3d.node.seams import Waiter

R = TypeVar("R")


class Expired(Exception):
    """A proposal's deadline passed before its entry was applied (``expire``)."""


def expire(waiter: asyncio.Future[Any]) -> None:
    """A proposer's deadline timer (``loop.call_later``): fails its waiter with ``Expired``
    unless it is done. ``asyncio.timeout`` around the await did the same for 3 % of the
    leader's loop at c=64 (a context manager, a reschedule, the task's cancel and uncancel)."""
    if not waiter.done():
        waiter.set_exception(Expired())


@dataclass(slots=True)
class _Pending(Generic[R]):
    term: int
    waiter: Waiter[R]
    forwarded: bool = False


class Proposals(Generic[R]):
    """An entry proposed at (index, term) succeeds when an entry with that same index and term
    is applied. A different entry at its index means another leader replaced it; a term that
    ends first leaves it in doubt. Either way the proposer hears "outcome unknown": the entry
    may still commit (or may have) somewhere.

    A proposal this node forwarded to the leader (``forwarded``) is told more: another entry
    applied at its index means it certainly did not commit (only one entry ever commits at an
    index), so it fails with ``NotCommittedError`` and may be proposed again.

    ``counts`` (``committed``, ``outcome_unknown``) is updated as proposals end.
    """

    __slots__ = ("_counts", "_pending")

    def __init__(self, counts: MutableMapping[str, int]) -> None:
        self._counts = counts
        self._pending: dict[int, _Pending[R]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, index: object) -> bool:
        return index in self._pending

    def add(self, index: int, term: int, waiter: Waiter[R], *, forwarded: bool = False) -> None:
        pending = _Pending(term, waiter, forwarded)
        previous = self._pending.get(index)
        if previous is not None and previous.term != term and not previous.waiter.done():
            # Two leaders appended at this index. Only the later term's is waited for; the
            # earlier one is in doubt, not gone: a later leader may still hold and commit it.
            if previous.term > term:
                self._unknown(index, pending)
                return
            self._unknown(index, previous)
        self._pending[index] = pending

    async def wait(self, index: int, term: int, deadline: float) -> R:
        """The result of the entry just proposed at (index, term), once applied here; raises
        TimeoutError when ``deadline`` seconds pass first (the entry may still commit later;
        its leadership did not change, so it is not reported as such)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.add(index, term, future)
        # Awaited as it is (no shield): its result reaches us a loop turn sooner. A waiter
        # that expired or was cancelled (the caller left) is skipped when its entry applies.
        timer = loop.call_later(deadline, expire, future)  # not asyncio.timeout: see expire
        try:
            return await future
        except Expired:
            self.forget(index, future)
            self._counts["outcome_unknown"] += 1
            raise TimeoutError(
                f"entry {index} (term {term}) was not seen to commit within {deadline:g} s"
            ) from None
        except asyncio.CancelledError:
            self.forget(index, future)  # nobody will read the result
            raise
        finally:
            timer.cancel()

    def forget(self, index: int, waiter: Waiter[R]) -> None:
        """The proposer left (timed out, cancelled): nobody is waiting at ``index`` now."""
        pending = self._pending.get(index)
        if pending is not None and pending.waiter is waiter:
            del self._pending[index]

    def applied(self, index: int, term: int, result: R) -> None:
        """The entry (index, term) was applied with ``result``."""
        pending = self._pending.pop(index, None)
        if pending is None or pending.waiter.done():
            return
        if pending.term == term:
            pending.waiter.set_result(result)
            self._counts["committed"] += 1
        else:
            self._gone(index, pending)

    def replaced(self, index: int) -> None:
        """Something that is not a proposal (a leader's no-op) was applied at ``index``."""
        pending = self._pending.pop(index, None)
        if pending is not None and not pending.waiter.done():
            self._gone(index, pending)

    def fail(self, keep_term: int | None = None) -> None:
        """Every proposal not of ``keep_term`` is in doubt now (its term ended)."""
        kept: dict[int, _Pending[R]] = {}
        for index, pending in self._pending.items():
            if pending.term == keep_term:
                kept[index] = pending
            elif not pending.waiter.done():
                self._unknown(index, pending)
        self._pending = kept

    def _gone(self, index: int, pending: _Pending[R]) -> None:
        """Another entry than the proposal's holds (or will hold) its index."""
        if pending.forwarded:
            pending.waiter.set_exception(NotCommittedError(index, pending.term))
        else:
            self._unknown(index, pending)

    def _unknown(self, index: int, pending: _Pending[R]) -> None:
        pending.waiter.set_exception(OutcomeUnknownError(index, pending.term))
        self._counts["outcome_unknown"] += 1
