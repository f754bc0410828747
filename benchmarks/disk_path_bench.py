"""A log write's trip through the disk thread, in one process, beside a busy event loop.

Sequential one-entry ``DurableStorage.persist`` calls (fsync on) are handed from the loop to
the disk thread while the loop runs Python work in short steps (JSON round trips, as request
handling does) with a yield between them, the way a leader's loop is kept busy at c=64.
For each way of handing over (``executor``: ``run_in_executor`` on a one-thread
``ThreadPoolExecutor``, as before; ``thread``: ``raft3d.node.disk.DiskThread.run``) and each
switch interval, it prints: the write's latency as the loop sees it, the wait from the
hand-over to the job starting on the thread, the time inside ``persist``, and how much
Python work the loop got done meanwhile (steps/s: the price of more GIL switches).

    .venv/bin/python -m benchmarks.disk_path_bench [--writes 400] [--idle] \
        [--switch 0.005,0.001,0.0005,0.0002]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from raft3d.consensus.types import Entry, HardState
from raft3d.node.disk import DiskThread
from raft3d.storage import DurableStorage

WORK = {"id": "printer-0001", "model": "MK4", "status": "idle", "tags": list(range(40))}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_mode(data_dir: Path, mode: str, writes: int, busy: bool) -> dict[str, float]:
    storage = DurableStorage(data_dir)
    executor = concurrent.futures.ThreadPoolExecutor(1, "bench-disk")
    disk = DiskThread("bench-disk")
    loop = asyncio.get_running_loop()
    steps = 0
    running = True

    async def work() -> None:
        nonlocal steps
        while running:
            for _ in range(5):
                json.loads(json.dumps(WORK))
            steps += 1
            await asyncio.sleep(0)

    worker = asyncio.create_task(work()) if busy else None
    latency: list[float] = []
    to_start: list[float] = []
    inside: list[float] = []
    last = storage.last_index()
    started = time.perf_counter()
    try:
        for i in range(writes):
            entry = Entry(last + i + 1, 1, b"x" * 128)
            box: list[float] = []

            def job(entry: Entry = entry, box: list[float] = box) -> None:
                box.append(time.perf_counter())
                storage.persist(HardState(1, "n1", 0), [entry])
                box.append(time.perf_counter())

            t0 = time.perf_counter()
            if mode == "executor":
                await loop.run_in_executor(executor, job)
            else:
                await disk.run(job)
            latency.append((time.perf_counter() - t0) * 1e3)
            to_start.append((box[0] - t0) * 1e3)
            inside.append((box[1] - box[0]) * 1e3)
    finally:
        running = False
        if worker is not None:
            await worker
        elapsed = time.perf_counter() - started
        executor.shutdown()
        disk.shutdown()
        storage.close()
    return {
        "p50": statistics.median(latency),
        "p99": pct(latency, 0.99),
        "start50": statistics.median(to_start),
        "start99": pct(to_start, 0.99),
        "inside50": statistics.median(inside),
        "steps": steps / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--switch", default="0.005,0.001,0.0005,0.0002")
    parser.add_argument("--idle", action="store_true", help="no Python work on the loop")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    switches = [float(s) for s in args.switch.split(",")]
    modes = [("executor", switches[0])] + [("thread", s) for s in switches]
    results: dict[tuple[str, float], list[dict[str, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for mode, switch in modes if round_no % 2 == 0 else list(reversed(modes)):
                sys.setswitchinterval(switch)
                data_dir = Path(tmp) / f"{mode}-{switch}"
                row = asyncio.run(one_mode(data_dir, mode, args.writes, not args.idle))
                results[(mode, switch)].append(row)
    print(
        f"{args.writes} writes x {args.rounds} rounds, loop {'idle' if args.idle else 'busy'}"
        " (ms; medians of the rounds)"
    )
    print("  hand-over  switch   write p50   p99   to start p50   p99   persist p50  loop steps/s")
    for (mode, switch), rows in results.items():

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        print(
            f"  {mode:<9} {switch * 1e3:5.1f} ms  {med('p50'):8.3f} {med('p99'):6.2f}"
            f"   {med('start50'):10.3f} {med('start99'):6.2f}   {med('inside50'):9.3f}"
            f"  {med('steps'):10.0f}"
        )


if __name__ == "__main__":
    main()
