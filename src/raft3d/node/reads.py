"""Read barriers: callers waiting until the node has applied a confirmed read index.

Callers that arrive together share one ReadIndex request (a batch, named by a context the
core echoes back). A confirmed batch waits for the apply index to reach its read index; a
batch unanswered for ``retry_after`` is asked again (the request, its answer, or the leader
may have been lost). Time is passed in, so the same bookkeeping runs in real and in
simulated time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from raft3d.consensus.types import ReadState
from raft3d.node.seams import Waiter


@dataclass(slots=True)
class _Batch:
    waiters: list[Waiter[int]]
    issued_at: float


class ReadBarriers:
    """Each waiter gets the read index it was released at."""

    __slots__ = (
        "_ids",
        "_issued",
        "_next_retry",
        "_prefix",
        "_retry_after",
        "_unissued",
        "_waiting_apply",
    )

    def __init__(self, retry_after: float, context_prefix: bytes = b"") -> None:
        """``context_prefix`` tells this node's requests (in this run) apart from those of
        other nodes and earlier runs: the leader keys pending reads by context, and a late
        answer to an earlier run's request must not release a newer one."""
        self._retry_after = retry_after
        self._prefix = context_prefix
        self._unissued: list[Waiter[int]] = []
        self._issued: dict[bytes, _Batch] = {}
        self._waiting_apply: list[tuple[int, list[Waiter[int]]]] = []
        self._ids = itertools.count(1)
        self._next_retry = float("inf")  # no issued batch is overdue before this time

    def __len__(self) -> int:
        """Waiters not yet released (done ones included until they are dropped)."""
        return (
            len(self._unissued)
            + sum(len(b.waiters) for b in self._issued.values())
            + sum(len(ws) for _, ws in self._waiting_apply)
        )

    def retry_due(self) -> float:
        """When ``issue`` should next be called to retry an unanswered batch (inf: never).
        It may come early (that batch was answered since); ``issue`` then only tidies up."""
        return self._next_retry if self._issued else float("inf")

    def add(self, waiter: Waiter[int]) -> None:
        self._unissued.append(waiter)

    def issue(self, now: float, read_index: Callable[[bytes], None]) -> None:
        """Ask ``read_index`` for one context covering every waiter not yet asked for, and
        again for batches unanswered since ``now - retry_after``."""
        if now > self._next_retry:
            self._retry(now)
        if not self._unissued:
            return
        waiters = [w for w in self._unissued if not w.done()]
        self._unissued = []
        if not waiters:
            return
        ctx = self._prefix + next(self._ids).to_bytes(8, "big")
        self._issued[ctx] = _Batch(waiters, now)
        self._next_retry = min(self._next_retry, now + self._retry_after)
        read_index(ctx)

    def _retry(self, now: float) -> None:
        """Move overdue batches back to the unissued; drop those nobody waits for now."""
        oldest = float("inf")
        for ctx, batch in list(self._issued.items()):
            live = [w for w in batch.waiters if not w.done()]
            if not live:
                del self._issued[ctx]
            elif now - batch.issued_at > self._retry_after:
                del self._issued[ctx]
                self._unissued.extend(live)
            else:
                oldest = min(oldest, batch.issued_at)
        self._next_retry = oldest + self._retry_after

    def confirmed(self, state: ReadState) -> None:
        """The leader confirmed ``state.index`` for a batch (unknown contexts: duplicates)."""
        batch = self._issued.pop(state.context, None)
        if batch is not None:
            self._waiting_apply.append((state.index, batch.waiters))

    def release(self, applied: int) -> None:
        """Release every confirmed batch whose read index is applied."""
        kept: list[tuple[int, list[Waiter[int]]]] = []
        for index, waiters in self._waiting_apply:
            if index <= applied:
                for w in waiters:
                    if not w.done():
                        w.set_result(index)
            else:
                kept.append((index, waiters))
        self._waiting_apply = kept

    def fail(self, exc: BaseException) -> None:
        """Fail every waiter with ``exc`` (the node is stopping or halted)."""
        waiters = list(self._unissued)
        for batch in self._issued.values():
            waiters.extend(batch.waiters)
        for _, ws in self._waiting_apply:
            waiters.extend(ws)
        for w in waiters:
            if not w.done():
                w.set_exception(exc)
        self._unissued, self._issued, self._waiting_apply = [], {}, []
