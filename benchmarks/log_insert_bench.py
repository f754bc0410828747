"""How long one log write takes on the disk thread while another thread runs Python, by how
the entries are inserted.

``DurableStorage.persist`` (one transaction, fsync on) is called with batches of N entries on
a thread of its own, the way the node's disk thread does, while the main thread runs Python
work without a pause (a leader's loop at c=64 is busy about 0.8 of the time). Every SQLite
statement lets go of the GIL while SQLite runs and takes it back after; each take waits for
the busy thread, up to the switch interval (the node's, ``raft3d.node.disk``). Modes:

- ``per-row``: one statement per entry (``executemany``, how the log was written before);
- ``batched``: ``LogDatabase.insert_entries`` as it is now (a few multi-row statements).

The two modes alternate round by round; it prints the medians over rounds of each round's
p50 and p90, in ms.

    .venv/bin/python -m benchmarks.log_insert_bench [--batches 1,8,64] [--writes 150]
        [--rounds 4] [--idle]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from raft3d.consensus.types import Entry, HardState
from raft3d.node.disk import tune_switch_interval
from raft3d.storage import DurableStorage
from raft3d.storage.log_db import LogDatabase

RECORD = b"x" * 200


def per_row_insert(db: LogDatabase, entries: Sequence[Entry]) -> None:
    """The insert as it was: one statement per entry."""
    db._conn.executemany(
        "INSERT INTO log_entries (idx, term, type, data) VALUES (?, ?, ?, ?)",
        [(e.index, e.term, int(e.type), e.data) for e in entries],
    )


BATCHED = LogDatabase.insert_entries


def one_round(data_dir: Path, mode: str, batch: int, writes: int) -> list[float]:
    chosen: Callable[[LogDatabase, Sequence[Entry]], None] = (
        per_row_insert if mode == "per-row" else BATCHED
    )
    LogDatabase.insert_entries = chosen  # type: ignore[method-assign,assignment]
    storage = DurableStorage(data_dir)
    took: list[float] = []
    try:
        index = storage.last_index()
        for _ in range(writes):
            entries = [Entry(index + i + 1, 1, RECORD) for i in range(batch)]
            index += batch
            started = time.perf_counter()
            storage.persist(HardState(1, "n1", index), entries)
            took.append((time.perf_counter() - started) * 1e3)
    finally:
        storage.close()
        LogDatabase.insert_entries = BATCHED  # type: ignore[method-assign]
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--writes", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--idle", action="store_true", help="no busy thread beside the writes")
    args = parser.parse_args()
    tune_switch_interval()
    running = True

    def burn() -> None:
        total = 0
        while running:
            for i in range(1000):
                total += i * i

    busy = None if args.idle else threading.Thread(target=burn, daemon=True)
    if busy is not None:
        busy.start()
    print(
        f"entries per write, mode: p50 / p90 ms (medians of {args.rounds} rounds), "
        f"{'idle' if busy is None else 'beside a busy thread'}"
    )
    try:
        for batch in (int(b) for b in args.batches.split(",")):
            results: dict[str, list[tuple[float, float]]] = {"per-row": [], "batched": []}
            with tempfile.TemporaryDirectory() as tmp:
                for r in range(args.rounds):
                    for mode in results:
                        took = one_round(Path(tmp) / f"{mode}-{r}", mode, batch, args.writes)
                        results[mode].append((pct(took, 0.5), pct(took, 0.9)))
            for mode, rows in results.items():
                p50 = statistics.median(p for p, _ in rows)
                p90 = statistics.median(p for _, p in rows)
                print(f"  {batch:4d} {mode:8s} {p50:7.2f} / {p90:7.2f}")
    finally:
        running = False
        if busy is not None:
            busy.join()


if __name__ == "__main__":
    main()
