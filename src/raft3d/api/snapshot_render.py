"""Rendering a snapshot as JSON in a worker process, off the event loop and its GIL.

Decoding a snapshot builds a second copy of the whole farm as Python objects, and the cyclic
garbage collector then walks every object in the process: in a thread beside the event loop
that held the loop for hundreds of milliseconds at 100k jobs. A worker process has its own
interpreter, so the node's loop only waits for bytes. The worker starts on first use
("spawn": nothing of the node's state or threads is inherited) and stops with the app.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
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


class SnapshotRenderer:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def render(self, data: bytes, head: dict[str, object]) -> bytes:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, render_snapshot, data, head)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # Waiting for the worker to exit takes a while: not on the loop.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
