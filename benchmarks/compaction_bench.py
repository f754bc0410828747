"""What a compaction costs the log's appends: its dropped log prefix and its dropped file.

``prefix``: appends of 64 entries of 200 bytes (``DurableStorage.persist``, fsync on), a
local snapshot every 200 of them; times each snapshot's commit and each append.

- ``at-once``: the commit deletes the whole prefix itself, as before (emulated by finishing
  the trim inside the timed commit);
- ``stepped``: as now, the appends after it delete ``TRIM_STEP`` rows each.

``files``: ``--files`` snapshot files of ``--mb`` MiB are written and synced; then one-entry
log commits run every 2 ms on a thread, timed, while the main thread removes the files one
after another, 0.2 s apart.

- ``unlink``: one ``unlink`` of the whole file, as before;
- ``stepped``: ``file_removal.remove_files``, as now: cut down ``TRUNCATE_STEP`` at a time.

    .venv/bin/python -m benchmarks.compaction_bench [--rounds 6] [--mb 117] [--files 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from raft3d.consensus.types import Entry, HardState, Snapshot, SnapshotMeta
from raft3d.storage import DurableStorage
from raft3d.storage.file_removal import remove_files

DATA = b"x" * 200
META = ("n1",)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _tail(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered):5.2f}  p99 {p99:6.2f}  max {ordered[-1]:6.2f} ms"


def prefix(directory: Path, mode: str, rounds: int) -> None:
    storage = DurableStorage(directory, trailing_entries=5000)
    storage.load()
    index, appends, commits = 0, [], []
    for _ in range(rounds):
        for _ in range(200):
            batch = [Entry(index + i + 1, 1, DATA) for i in range(64)]
            index += 64
            started = time.perf_counter()
            storage.persist(HardState(1, "n1", index), batch)
            appends.append(_ms(started))
        started = time.perf_counter()
        storage.save_local_snapshot(Snapshot(SnapshotMeta(index, 1, META), b"s" * 1000))
        if mode == "at-once":
            storage._db.finish_trim()
        commits.append(_ms(started))
    storage.close()
    print(f"prefix {mode:<8} snapshot commit {_tail(commits)};  append {_tail(appends)}")


def files(directory: Path, mode: str, mb: int, count: int) -> None:
    part = os.urandom(1 << 20)
    paths = [directory / f"snapshot-{k}.snap" for k in range(count)]
    for path in paths:  # written and synced before the commits are timed
        with path.open("wb") as f:
            for _ in range(mb):
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
    storage = DurableStorage(directory / "data")
    storage.load()
    commits: list[float] = []
    stop = threading.Event()

    def commit_loop() -> None:
        index = 0
        while not stop.is_set():
            index += 1
            started = time.perf_counter()
            storage.persist(HardState(1, "n1", index), [Entry(index, 1, DATA)])
            commits.append(_ms(started))
            stop.wait(0.002)  # pacing of the commits, not synchronisation

    committer = threading.Thread(target=commit_loop)
    committer.start()
    removals = []
    for path in paths:
        stop.wait(0.2)  # pacing: commits between two removals too
        started = time.perf_counter()
        if mode == "unlink":
            path.unlink()
        else:
            remove_files(directory, [path])
        removals.append(_ms(started))
    stop.wait(0.2)
    stop.set()
    committer.join()
    storage.close()
    print(
        f"files  {mode:<8} removal median {statistics.median(removals):5.1f} ms;"
        f"  log commit {_tail(commits)} ({len(commits)} commits)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6, help="snapshots per prefix mode")
    parser.add_argument("--mb", type=int, default=117, help="size of each removed file")
    parser.add_argument("--files", type=int, default=4, help="files removed per files mode")
    args = parser.parse_args()
    for mode in ("at-once", "stepped"):
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            prefix(Path(tmp), mode, args.rounds)
    for mode in ("unlink", "stepped"):
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            files(Path(tmp), mode, args.mb, args.files)


if __name__ == "__main__":
    main()
