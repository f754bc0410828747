"""How a big snapshot file being written slows the log's commits on the same file system.

One thread writes snapshot files of ``--mb`` MiB through ``StreamedSnapshotFile`` (1 MiB
parts, then the caller's fsync, as a node's writer thread does, past the page cache where
the file system allows it; the file before the last removed by a ``FileRemover``, as a
node removes it), pausing 0.5 s between files; meanwhile the main thread commits one-entry
log writes (``DurableStorage.persist``, fsync on) every 2 ms and times each. Modes:

- ``none``: no snapshot written (the baseline);
- ``one-fsync``: the file reaches the disk only in the fsync at its end (as before);
- ``every-4mib``: ``SYNC_EVERY_BYTES`` as it is now.

    .venv/bin/python -m benchmarks.snapshot_sync_bench [--mb 117] [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from raft3d.consensus.types import Entry, HardState, SnapshotMeta
from raft3d.storage import DurableStorage, snapshot_file
from raft3d.storage.file_removal import FileRemover
from raft3d.storage.snapshot_stream import StreamedSnapshotFile, open_for

NOW = snapshot_file.SYNC_EVERY_BYTES
MODES = {"none": 0, "one-fsync": 1 << 62, "every-4mib": NOW}


def write_files(directory: Path, mb: int, stop: threading.Event) -> None:
    part = os.urandom(1 << 20)
    meta = SnapshotMeta(1, 1, ("n1",))
    k = 0
    remover = FileRemover(directory)
    while not stop.is_set():
        path = directory / f"snap{k}"
        fd = open_for(path)
        try:
            streamed = StreamedSnapshotFile(fd, meta, time.time())
            for _ in range(mb):
                streamed.write(part)
            streamed.finish()
            os.fsync(fd)
        finally:
            os.close(fd)
        if k >= 2:  # two kept, the older removed as a node removes it
            remover.remove([directory / f"snap{k - 2}"])
        k += 1
        stop.wait(0.5)
    remover.close()


def one_mode(directory: Path, mode: str, mb: int, seconds: float) -> list[float]:
    snapshot_file.SYNC_EVERY_BYTES = MODES[mode] or NOW
    storage = DurableStorage(directory / "data")
    stop = threading.Event()
    writer = None
    if MODES[mode]:
        writer = threading.Thread(target=write_files, args=(directory, mb, stop))
        writer.start()
    took: list[float] = []
    try:
        index = storage.last_index()
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            index += 1
            started = time.perf_counter()
            storage.persist(HardState(1, "n1", index - 1), [Entry(index, 1, b"x" * 200)])
            took.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.002)  # the pace of the commits, not a synchronisation
    finally:
        stop.set()
        if writer is not None:
            writer.join()
        storage.close()
        snapshot_file.SYNC_EVERY_BYTES = NOW
    return sorted(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=117)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    print(f"log commits beside {args.mb} MiB snapshot files, {args.seconds:g} s per mode (ms)")
    for mode in MODES:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            took = one_mode(Path(tmp), mode, args.mb, args.seconds)
        n = len(took)
        print(
            f"  {mode:11s} {n:5d} commits  p50 {took[n // 2]:6.2f}  p99 {took[int(n * 0.99)]:6.2f}"
            f"  p99.9 {took[int(n * 0.999)]:6.2f}  max {took[-1]:6.1f}"
        )


if __name__ == "__main__":
    main()
