"""How long a local snapshot of a large farm holds a node's event loop, and what it costs.

One real node in this process (SQLite log, snapshot files in a temp directory), a single
voter seeded with the farm of ``stall_bench`` (``--objects`` objects), a ticker task that
runs once per loop iteration, and ``--rounds`` snapshots, each after one more write. For
each snapshot: the longest gap between two ticks in wall time and in the loop thread's own
CPU time (the latter leaves out the time the shared machine gave to other processes), and
the snapshot's total time; before them, how long the node's start took to restore the farm
and the longest gap meanwhile; then the process's peak RSS (from the node's start: restore and
snapshots) against the snapshot size.

Unlike ``stall_bench`` there is no HTTP load and no peers: the figures are the snapshot's
own cost, the part a loaded machine cannot blur.

    .venv/bin/python -m benchmarks.snapshot_hold_bench --objects 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.settings import node_settings
from tests.support.waiting import eventually

from benchmarks.loop_hold_bench import GapTicker
from benchmarks.stall_bench import SEED_INDEX, SEED_TERM, farm_snapshot, vm_kb
from raft3d.consensus.types import HardState, Snapshot, SnapshotMeta
from raft3d.domain import CreatePrinter, FarmStateMachine, encode_command
from raft3d.node.wiring import build_node
from raft3d.storage import DurableStorage


def seed(data_dir: Path, objects: int) -> int:
    """Seed ``data_dir`` with the farm's snapshot; returns its size."""
    data = farm_snapshot(objects)
    with DurableStorage(data_dir) as storage:
        meta = SnapshotMeta(SEED_INDEX, SEED_TERM, ("solo",))
        storage.persist(HardState(SEED_TERM, None, SEED_INDEX), [], Snapshot(meta, data))
    return len(data)


async def run(objects: int, data_dir: Path, size: int, rounds: int) -> None:
    started = time.perf_counter()
    node = build_node(node_settings(data_dir, snapshot_threshold=10**9), FarmStateMachine())
    ticker = GapTicker()
    task = asyncio.create_task(ticker.run())
    await node.start()
    up = time.perf_counter() - started
    try:
        # The restore runs in slices beside the node (raft3d.node.restoring).
        await eventually(lambda: not node.restoring, 600, "the snapshot to be restored")
        rss = vm_kb(os.getpid(), "VmRSS") / 1024
        print(
            f"farm: {objects} objects, snapshot {size / 1e6:.1f} MB; node up in {up:.2f} s, "
            f"restored in {time.perf_counter() - started:.1f} s with the loop held at most "
            f"{ticker.max_gap * 1000:.1f} ms wall, {ticker.max_cpu_gap * 1000:.1f} ms cpu; "
            f"RSS {rss:.0f} MB"
        )
        await eventually(lambda: node.is_leader, 60, "the single voter to elect itself")
        walls, cpus, totals = [], [], []
        for n in range(rounds):
            await node.propose(encode_command(CreatePrinter(f"x{n}", "Prusa", "MK4")))
            await asyncio.sleep(0.05)
            ticker.reset()
            began = time.perf_counter()
            await node.take_snapshot()
            totals.append(time.perf_counter() - began)
            walls.append(ticker.max_gap)
            cpus.append(ticker.max_cpu_gap)
        task.cancel()
    finally:
        await node.stop()
    print(
        f"{rounds} snapshots: max loop hold {max(walls) * 1000:.1f} ms wall "
        f"(median {statistics.median(walls) * 1000:.1f}), {max(cpus) * 1000:.1f} ms cpu "
        f"(median {statistics.median(cpus) * 1000:.1f}); snapshot total median "
        f"{statistics.median(totals):.2f} s, max {max(totals):.2f} s"
    )
    peak = vm_kb(os.getpid(), "VmHWM") * 1024
    print(f"peak RSS {peak / 1e6:.0f} MB = {peak / size:.1f}x the snapshot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "solo"
        size = seed(data_dir, args.objects)
        gc.collect()
        # Peak RSS from here on: building the seed is the benchmark's work, not the node's.
        Path("/proc/self/clear_refs").write_text("5")
        asyncio.run(run(args.objects, data_dir, size, args.rounds))


if __name__ == "__main__":
    main()
