"""Throughput and latency of ``DurableStorage.persist`` (the node's hot path).

Each call persists a hard state and a batch of entries: one transaction and one fsync, as a
node does for one Ready. Run from the repository root::

    .venv/bin/python -m benchmarks.storage_bench [--calls 2000] [--entry-bytes 128]

Numbers depend heavily on the disk's fsync latency; run it on the disk the data directory
will live on (``--dir``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from raft3d.consensus.types import Entry, HardState
from raft3d.storage import DurableStorage


def bench_persist(directory: Path, batch: int, calls: int, entry_bytes: int) -> dict[str, float]:
    payload = b"\xab" * entry_bytes
    latencies: list[float] = []
    with DurableStorage(directory) as storage:
        storage.load()
        index = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        for _ in range(calls):
            entries = [Entry(index + k, 7, payload) for k in range(1, batch + 1)]
            hard = HardState(7, "node1", index)
            t0 = time.perf_counter()
            storage.persist(hard, entries)
            latencies.append(time.perf_counter() - t0)
            index += batch
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    latencies.sort()
    return {
        "calls_per_s": calls / elapsed,
        "entries_per_s": calls * batch / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "cpu_ms": cpu / calls * 1000,  # this process's CPU per call; the rest is fsync wait
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="persist calls per batch size")
    parser.add_argument("--entry-bytes", type=int, default=128)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1, 64)")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the data dirs")
    args = parser.parse_args()
    batches = args.batch or [1, 64]

    print(f"persist: {args.calls} calls per batch size, {args.entry_bytes}-byte entries")
    columns = [("batch", 5), ("calls/s", 9), ("entries/s", 10)]
    columns += [(name, 7) for name in ("p50 ms", "p99 ms", "max ms", "cpu ms")]
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="raft3d-storage-bench-") as tmp:
        for batch in batches:
            r = bench_persist(Path(tmp) / f"batch{batch}", batch, args.calls, args.entry_bytes)
            print(
                f"{batch:>5} {r['calls_per_s']:>9.0f} {r['entries_per_s']:>10.0f} "
                f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.2f} {r['cpu_ms']:>7.3f}"
            )


if __name__ == "__main__":
    main()
