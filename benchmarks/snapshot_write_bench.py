"""What writing one big snapshot file costs its writer thread: CPU (``time.thread_time``,
kernel time included) and wall time, through the page cache or past it (``O_DIRECT``).

Each mode writes ``--files`` files of ``--mb`` MiB through ``StreamedSnapshotFile`` in
0.5 MB parts (the size of an encode slice), fsyncs each, removes the one before the last
with a ``FileRemover`` as a node does, and waits ``--pause`` s between files (a node at
1M objects under load snapshots every few seconds). Modes:

- ``page-cache``: the descriptor opened without ``O_DIRECT`` (as before);
- ``direct``: as a node writes its snapshots now (``snapshot_stream.open_for``).

    .venv/bin/python -m benchmarks.snapshot_write_bench [--mb 117] [--files 6] [--pause 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from raft3d.consensus.types import SnapshotMeta
from raft3d.storage import snapshot_stream
from raft3d.storage.file_removal import FileRemover
from raft3d.storage.snapshot_stream import StreamedSnapshotFile, is_direct, open_for

PART = 1 << 19


def write_one(path: Path, mb: int, part: bytes) -> tuple[float, float, bool]:
    cpu, wall = time.thread_time(), time.perf_counter()
    fd = open_for(path)
    try:
        direct = is_direct(fd)
        streamed = StreamedSnapshotFile(fd, SnapshotMeta(1, 1, ("n1",)), time.time())
        for _ in range(mb * (1 << 20) // PART):
            streamed.write(part)
        streamed.finish()
        os.fsync(fd)
    finally:
        os.close(fd)
    return (time.thread_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3, direct


def one_mode(directory: Path, direct: bool, args: argparse.Namespace) -> list[tuple[float, float]]:
    saved = snapshot_stream._DIRECT
    snapshot_stream._DIRECT = saved if direct else 0
    remover = FileRemover(directory)
    part = os.urandom(PART)
    took: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        for k in range(args.files):
            cpu, wall, was_direct = write_one(directory / f"snap{k}", args.mb, part)
            assert was_direct == direct, "the file system takes no O_DIRECT"
            took.append((cpu, wall))
            if k >= 2:
                remover.remove([directory / f"snap{k - 2}"])
            stop.wait(args.pause)  # the pace of the snapshots, not a synchronisation
    finally:
        remover.close()
        snapshot_stream._DIRECT = saved
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=117)
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--pause", type=float, default=3.0)
    args = parser.parse_args()
    print(f"writing {args.files} snapshot files of {args.mb} MiB per mode (ms per file)")
    for name, direct in (("page-cache", False), ("direct", True)):
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            took = one_mode(Path(tmp), direct, args)
        cpu = [c for c, _ in took]
        wall = [w for _, w in took]
        print(
            f"  {name:10s} CPU median {statistics.median(cpu):6.0f} max {max(cpu):6.0f}"
            f"   wall median {statistics.median(wall):6.0f} max {max(wall):6.0f}"
        )


if __name__ == "__main__":
    main()
