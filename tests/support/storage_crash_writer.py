"""Child process of the storage crash test: writes random batches until it is killed.

Usage (from the repository root)::

    python -m tests.support.storage_crash_writer DATA_DIR SEED [MAX]

It opens the storage, recovers, then loops over random operations (appends, suffix
overwrites, local snapshots with compaction, snapshots received from a leader, hard state
updates). Protocol on stdout, one flushed line per event::

    ready <digest>                         state recovered at start
    begin <batch> <kind> <digest-after>    about to call the storage
    durable <batch> <last-index> <digest-after>   the call returned: the state is durable

``digest`` is ``StorageModel.digest()`` of the whole observable state, so the parent can check
that what it recovers after a SIGKILL is exactly the last durable state or the one that
follows the batch in flight: never a part of a batch.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

from raft3d.consensus.types import Entry, EntryType, HardState, Snapshot, SnapshotMeta
from raft3d.storage import DurableStorage
from tests.support.storage_model import StorageModel

VOTERS = ("n1", "n2", "n3")

Operation = tuple[str, Callable[[StorageModel | DurableStorage], None]]


def random_entries(rng: random.Random, first: int, term: int, count: int) -> list[Entry]:
    entries = []
    for index in range(first, first + count):
        if rng.random() < 0.05:
            entries.append(Entry(index, term, b"", EntryType.NOOP))
        else:
            entries.append(Entry(index, term, rng.randbytes(rng.randrange(0, 300))))
    return entries


def batch_size(rng: random.Random) -> int:
    return rng.randint(1, 256) if rng.random() < 0.1 else rng.randint(1, 64)


def next_operation(rng: random.Random, model: StorageModel) -> Operation:
    """Choose one random storage call that is valid from ``model``'s state."""
    hs = model.hard_state
    term = max(hs.term, 1)
    base, last = model.base_index, model.last_index
    commit = rng.randint(hs.commit, max(hs.commit, last)) if rng.random() < 0.5 else hs.commit
    roll = rng.random()

    if roll < 0.45 or last == base:
        entries = random_entries(rng, last + 1, term, batch_size(rng))
        hard = HardState(term, hs.vote or "n1", commit) if rng.random() < 0.7 else None
        return "append", lambda t: t.persist(hard, entries)
    if roll < 0.60:
        first = rng.randint(base + 1, last + 1)
        entries = random_entries(rng, first, term + 1, rng.randint(1, 32))
        hard = HardState(term + 1, rng.choice(VOTERS), min(commit, first - 1))
        return "overwrite", lambda t: t.persist(hard, entries)
    if roll < 0.72:
        index = rng.randint(base + 1, last)
        snap = Snapshot(SnapshotMeta(index, model.term_at(index), VOTERS), _state_bytes(rng))
        return "local-snapshot", lambda t: t.save_local_snapshot(snap)
    if roll < 0.80:
        index = max(base + 1, last + rng.randint(-5, 40))
        snap = Snapshot(SnapshotMeta(index, term + 1, VOTERS), _state_bytes(rng))
        entries = random_entries(rng, index + 1, term + 1, rng.randint(0, 16))
        hard = HardState(term + 1, None, index)
        return "received-snapshot", lambda t: t.persist(hard, entries, snapshot=snap)
    hard = HardState(term + rng.randint(0, 1), rng.choice((None, *VOTERS)), commit)
    return "hard-state", lambda t: t.persist(hard, [])


def _state_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randrange(1, 256_000))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    data_dir, seed = Path(argv[1]), int(argv[2])
    max_batches = int(argv[3]) if len(argv) > 3 else 100_000
    rng = random.Random(seed)
    with DurableStorage(data_dir) as storage:
        model = StorageModel.read_from(storage)
        say(f"ready {model.digest()}")
        for batch in range(1, max_batches + 1):
            kind, call = next_operation(rng, model)
            call(model)
            digest = model.digest()
            say(f"begin {batch} {kind} {digest}")
            call(storage)
            say(f"durable {batch} {storage.last_index()} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
