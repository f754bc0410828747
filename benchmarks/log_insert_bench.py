"""How long one log write takes on the disk thread while another thread runs Python, by how
the entries are inserted.

``DurableStorage.persist`` (one transaction, fsync on) is called with batches of N entries
while another thread runs Python work without a pause, as the loop thread beside a node's
disk thread does at load (a leader's loop at c=64 is busy about 0.8 of the time). Every SQLite
statement lets go of the GIL while SQLite runs and takes it back after; each take waits for
the busy thread, up to the switch interval (the node's, ``raft3d.node.disk``). Modes, each
a way of writing one Ready (its entries and hard state):

- ``per-row``: BEGIN, one INSERT per entry (``executemany``), the hard state, COMMIT (how
  the log was written before);
- ``one-insert``: BEGIN, one multi-row INSERT, the hard state, COMMIT;
- ``one-statement``: ``LogDatabase.write`` as it is now, one statement for all of it.

The modes alternate round by round; it prints the medians over rounds of each round's
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


def _old_write(
    db: LogDatabase, entries: Sequence[Entry], hard: HardState | None, one: bool
) -> None:
    conn = db._conn
    conn.execute("BEGIN IMMEDIATE")
    rows = [(e.index, e.term, int(e.type), e.data) for e in entries]
    insert = "INSERT INTO log_entries (idx, term, type, data) VALUES "
    if one and rows:
        conn.execute(insert + ", ".join(["(?, ?, ?, ?)"] * len(rows)), [v for r in rows for v in r])
    elif rows:
        conn.executemany(insert + "(?, ?, ?, ?)", rows)
    if hard is not None:
        conn.execute(
            "INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (0, ?, ?, ?)",
            (hard.term, hard.vote, hard.commit),
        )
    conn.execute("COMMIT")


def per_row(db: LogDatabase, entries: Sequence[Entry], hard: HardState | None = None) -> None:
    _old_write(db, entries, hard, one=False)


def one_insert(db: LogDatabase, entries: Sequence[Entry], hard: HardState | None = None) -> None:
    _old_write(db, entries, hard, one=True)


WRITE = LogDatabase.write
MODES: dict[str, Callable[[LogDatabase, Sequence[Entry], HardState | None], None]] = {
    "per-row": per_row,
    "one-insert": one_insert,
    "one-statement": WRITE,
}


def one_round(data_dir: Path, mode: str, batch: int, writes: int) -> list[float]:
    LogDatabase.write = MODES[mode]  # type: ignore[method-assign,assignment]
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
        LogDatabase.write = WRITE  # type: ignore[method-assign]
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
            results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
            with tempfile.TemporaryDirectory() as tmp:
                for r in range(args.rounds):
                    for mode in results:
                        took = one_round(Path(tmp) / f"{mode}-{r}", mode, batch, args.writes)
                        results[mode].append((pct(took, 0.5), pct(took, 0.9)))
            for mode, rows in results.items():
                p50 = statistics.median(p for p, _ in rows)
                p90 = statistics.median(p for _, p in rows)
                print(f"  {batch:4d} {mode:13s} {p50:7.2f} / {p90:7.2f}")
    finally:
        running = False
        if busy is not None:
            busy.join()


if __name__ == "__main__":
    main()
