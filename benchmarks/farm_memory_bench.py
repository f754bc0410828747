"""Where a large farm's memory goes, piece by piece, in one process (no node, no load).

Restores the ``stall_bench`` farm of ``--objects`` objects into a ``FarmStateMachine`` and
reports the RSS the farm adds (``/proc/self/status``, with the snapshot's bytes freed), the
sizes of its parts from ``sys.getsizeof`` walks (record bytes, the record chunks, the index
buckets and directory), how many objects the cyclic collector tracks, and how long a full
collection takes with the farm loaded, and the CPU a snapshot's encoding takes (three times).

    .venv/bin/python -m benchmarks.farm_memory_bench [--objects 1000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

from benchmarks.stall_bench import farm_snapshot, vm_kb
from raft3d.domain import FarmStateMachine
from raft3d.domain.record_table import RecordTable


def parts(table: RecordTable) -> dict[str, int]:
    """Bytes held by one table's parts (shared buckets counted once)."""
    chunks, tail = table._chunks, table._tail
    records = sum(sys.getsizeof(raw) for chunk in chunks for raw in chunk)
    records += sum(sys.getsizeof(raw) for raw in tail)
    buckets = {id(bucket): sys.getsizeof(bucket) for bucket in table._directory}
    return {
        "record bytes": records,
        "record chunks": sys.getsizeof(chunks)
        + sum(sys.getsizeof(chunk) for chunk in chunks)
        + sys.getsizeof(tail),
        "index buckets": sum(buckets.values()),
        "index directory": sys.getsizeof(table._directory),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    args = parser.parse_args()
    pid = os.getpid()
    gc.collect()
    before_tracked = len(gc.get_objects())
    data = farm_snapshot(args.objects)
    size = len(data)
    before = vm_kb(pid, "VmRSS")
    machine = FarmStateMachine()
    started = time.perf_counter()
    machine.restore(data)
    restored_s = time.perf_counter() - started
    del data  # its pages go back to the system (one large allocation)
    farm_kb = vm_kb(pid, "VmRSS") - before + size // 1024
    totals: dict[str, int] = {}
    farm = machine._farm
    for records in (farm._printers, farm._filaments, farm._jobs):
        for name, value in parts(records._map).items():
            totals[name] = totals.get(name, 0) + value
    gc.collect()
    tracked = len(gc.get_objects()) - before_tracked
    started = time.perf_counter()
    gc.collect()
    full_ms = (time.perf_counter() - started) * 1000
    print(
        f"farm: {args.objects} objects, snapshot {size / 1e6:.1f} MB, restored in "
        f"{restored_s:.1f} s; RSS the farm adds {farm_kb / 1024:.0f} MB = "
        f"{farm_kb * 1024 / size:.2f}x the snapshot"
    )
    print(
        "parts (getsizeof): "
        + ", ".join(f"{name} {value / 1e6:.1f} MB" for name, value in totals.items())
    )
    print(
        f"objects the collector tracks beyond the interpreter's: {tracked}; "
        f"a full collection: {full_ms:.1f} ms"
    )
    for _ in range(3):  # what a snapshot's encoding costs the loop, all its slices together
        started = time.process_time()
        encoded = sum(len(part) for part in machine.capture().parts())
        print(
            f"encoding a snapshot ({encoded / 1e6:.1f} MB): "
            f"{(time.process_time() - started) * 1000:.0f} ms of CPU"
        )


if __name__ == "__main__":
    main()
