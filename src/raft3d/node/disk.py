"""The disk thread: every write a node makes to its log database, one at a time, in the
order the loop hands them over, on one thread of its own.

A write's critical path crosses it twice (the leader's own append, then each follower's),
and measured at c=1 most of what it added was not the fsync but waiting around it:

- handing over through ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor``
  goes through a work item, a ``concurrent.futures.Future`` with its condition and lock,
  and a chained asyncio future; here a job is a tuple on a ``queue.SimpleQueue`` and its
  result comes back with one ``loop.call_soon_threadsafe`` (``run``);
- every time the thread needs the GIL back (at its start, and after each sqlite statement,
  which lets go of it; a plain append is one statement, ``LogDatabase.write``) it waits for
  the loop thread to block or to be told to switch. CPython tells it after
  ``sys.getswitchinterval()``, 5 ms by default: at c=8 a write of 1 ms took 7 ms at p99.
  ``SWITCH_INTERVAL_S`` is what a node sets for its process (``tune_switch_interval``); the
  price is more switches when two threads both want to run Python, measured at c=64 in the
  README ("The disk thread on a write's critical path").

``waiting`` says whether jobs are queued or running, so that work that holds the loop for
long (a restore in slices, ``raft3d.node.restoring``) lets go of the GIL only when the disk
has something to do. The class is also a ``concurrent.futures.Executor`` (``submit``), for
code that awaits with ``run_in_executor`` (loading the log at start, snapshot commits).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# The switch interval a node's process runs with (CPython's default is 5 ms).
SWITCH_INTERVAL_S = 0.0005

_Job = tuple[Callable[[], Any], Callable[[Any, BaseException | None], None]]


def tune_switch_interval(seconds: float = SWITCH_INTERVAL_S) -> None:
    """Lower the interpreter's forced switch interval to ``seconds`` (never raise it)."""
    if sys.getswitchinterval() > seconds:
        sys.setswitchinterval(seconds)


class DiskThread(concurrent.futures.Executor):
    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started with the first job
        self._lock = threading.Lock()
        self._closed = False
        self._queued = 0  # handed over and not finished yet (only the loop reads it)

    @property
    def waiting(self) -> bool:
        """A job is queued or running."""
        return self._queued > 0

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on the disk thread; the future is settled on the calling loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: Any, exc: BaseException | None) -> None:
            # On the disk thread: one wake-up of the loop, which settles the future.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, exc)

        self._put((lambda: fn(*args), settle))
        return future

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()

        def settle(result: Any, exc: BaseException | None) -> None:
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)

        self._put((lambda: fn(*args, **kwargs), settle))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Run what is queued, then stop the thread (``cancel_futures`` is not supported:
        a queued write is never dropped)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            if wait:
                thread.join()

    def _put(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: the disk thread is shut down")
            if self._thread is None:
                # A daemon: a process that ends without ``shutdown`` loses at most a write
                # nobody was told is durable (SQLite rolls an unfinished transaction back).
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._queued += 1
            self._jobs.put(job)

    def _work(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            call, settle = job
            try:
                result = call()
            except BaseException as exc:  # handed to whoever awaits it
                self._done()
                settle(None, exc)
            else:
                self._done()
                settle(result, None)
            del job, call, settle

    def _done(self) -> None:
        with self._lock:
            self._queued -= 1


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)
