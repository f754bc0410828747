"""Rendering a snapshot as JSON in a worker process, off the event loop and its GIL.

Decoding a snapshot builds a second copy of the whole farm as Python objects, and the cyclic
garbage collector then walks every object in the process: in a thread beside the event loop
that held the loop for hundreds of milliseconds at 100k jobs. A worker process has its own
interpreter, so the node's loop only waits for bytes. The worker starts on first use
("spawn": nothing of the node's state or threads is inherited) and stops with the app, or
with the node's process however that ends: a node killed with SIGKILL leaves no worker behind
(the kernel signals it when its parent dies; elsewhere it watches its parent).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from raft3d.domain.state import FarmStateMachine


def render_snapshot(data: bytes, head: dict[str, object]) -> bytes:
    """``head`` plus ``"state"``: the farm the snapshot ``data`` holds. Runs in the worker."""
    machine = FarmStateMachine()
    machine.restore(data)
    body = {
        **head,
        "state": {
            "printers": [printer.to_dict() for printer in machine.printers()],
            "filaments": [filament.to_dict() for filament in machine.filaments()],
            "print_jobs": [job.to_dict() for job in machine.print_jobs()],
        },
    }
    return json.dumps(body).encode("utf-8")


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when ``parent`` (the node) ends."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before the request took effect
                os._exit(0)
            return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)  # polling the parent's pid where the kernel cannot signal us
    os._exit(0)


class SnapshotRenderer:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def render(self, data: bytes, head: dict[str, object]) -> bytes:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, render_snapshot, data, head)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # Waiting for the worker to exit takes a while: not on the loop.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
