"""Trailing log entries kept after a local snapshot (issue 8, item 2; SPEC §7)."""

from __future__ import annotations

from pathlib import Path

from raft3d.consensus.types import HardState
from raft3d.storage import DurableStorage
from tests.support.durable import make_entries, make_snapshot


def test_a_local_snapshot_keeps_the_trailing_entries(tmp_path: Path) -> None:
    with DurableStorage(tmp_path, trailing_entries=3) as storage:
        storage.persist(HardState(1, "n1", 10), make_entries(1, 10, 1))
        storage.save_local_snapshot(make_snapshot(8, 1))
        assert (storage.first_index(), storage.last_index()) == (6, 10)
        assert [e.index for e in storage.read_entries(0, 100)] == [6, 7, 8, 9, 10]
        storage.persist(None, make_entries(11, 12, 1))
        storage.save_local_snapshot(make_snapshot(12, 1))
        assert storage.first_index() == 10
    with DurableStorage(tmp_path, trailing_entries=3) as reopened:
        state = reopened.load()
        assert state.snapshot == make_snapshot(12, 1)
        assert state.entries == []  # the core starts after its snapshot
        assert (reopened.first_index(), reopened.last_index()) == (10, 12)
        assert [e.index for e in reopened.read_entries(9, 100)] == [10, 11, 12]


def test_trailing_entries_never_reach_below_what_was_held(tmp_path: Path) -> None:
    with DurableStorage(tmp_path, trailing_entries=100) as storage:
        storage.persist(None, make_entries(1, 5, 1))
        storage.save_local_snapshot(make_snapshot(3, 1))
        assert storage.first_index() == 1
        storage.save_local_snapshot(make_snapshot(5, 1))
        assert (storage.first_index(), storage.last_index()) == (1, 5)


def test_a_snapshot_from_the_leader_replaces_the_trailing_entries(tmp_path: Path) -> None:
    with DurableStorage(tmp_path, trailing_entries=3) as storage:
        storage.persist(None, make_entries(1, 10, 1))
        storage.save_local_snapshot(make_snapshot(8, 1))
        storage.persist(HardState(2, None, 20), [], make_snapshot(20, 2))
        assert (storage.first_index(), storage.last_index()) == (21, 20)
        assert storage.read_entries(0, 100) == []
