"""Dropped snapshot files are removed off the log's write path, cut down in steps when
nothing holds them open, and never taken from a reader that has them open
(``raft3d.storage.file_removal``)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from raft3d.storage import DurableStorage, file_removal
from raft3d.storage.file_removal import TRUNCATE_STEP, remove_files
from raft3d.storage.snapshot_file import SnapshotFileData
from tests.support.durable import make_entries, make_snapshot, snapshot_files

SIZE = 2 * TRUNCATE_STEP + 4321


def _file(directory: Path, name: str = "snapshot-x.snap") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(b"z" * SIZE)
    return path


@pytest.fixture
def truncations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The lengths the file remover cuts files down to (a snapshot file being written is
    cut to its size too: not counted)."""
    seen: list[int] = []
    real = os.ftruncate

    def counted(fd: int, length: int) -> None:
        if sys._getframe(1).f_globals["__name__"] == file_removal.__name__:
            seen.append(length)
        real(fd, length)

    monkeypatch.setattr(os, "ftruncate", counted)
    return seen


def test_a_file_nothing_holds_is_cut_down_in_steps_then_unlinked(
    tmp_path: Path, truncations: list[int]
) -> None:
    path = _file(tmp_path)
    remove_files(tmp_path, [path])
    assert truncations == [SIZE - TRUNCATE_STEP, SIZE - 2 * TRUNCATE_STEP]
    assert list(tmp_path.iterdir()) == []


def test_a_file_a_reader_holds_open_stays_whole_for_it(
    tmp_path: Path, truncations: list[int]
) -> None:
    storage = tmp_path / "node1"
    with DurableStorage(storage, snapshots_keep=1) as opened:
        opened.persist(None, make_entries(1, 3, 1))
        opened.save_local_snapshot(make_snapshot(2, 1, b"d" * SIZE))
        reader = SnapshotFileData(opened.list_snapshots()[0].path)
        opened.save_local_snapshot(make_snapshot(3, 1, b"e" * 10))
        opened.flush_removals()
        assert [name for name in snapshot_files(storage) if "00000000000000000002" in name] == []
    assert truncations == []  # it was open here: unlinked only, as a plain unlink would
    assert reader[0:SIZE] == b"d" * SIZE
    reader.close()


def test_the_writer_does_not_remove_dropped_files_itself(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removing a 117 MB file took 44-51 ms, and it ran under the log's write lock."""
    removed_by: list[str] = []
    real = os.unlink

    def watched(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if ".snap" in os.fspath(path):
            removed_by.append(threading.current_thread().name)
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", watched)
    with DurableStorage(data_dir, snapshots_keep=1) as storage:
        storage.persist(None, make_entries(1, 30, 1))
        for index in (10, 20, 30):
            storage.save_local_snapshot(make_snapshot(index, 1))
        storage.flush_removals()
        assert len(snapshot_files(data_dir)) == 1
    assert len(removed_by) == 2
    assert threading.current_thread().name not in removed_by


def test_a_file_left_half_removed_by_a_crash_goes_at_the_next_open(data_dir: Path) -> None:
    with DurableStorage(data_dir) as storage:
        storage.persist(None, make_entries(1, 3, 1))
        storage.save_local_snapshot(make_snapshot(3, 1))
    leftover = _file(data_dir / "snapshots", ".snapshot-00000000000000000001-1.snap.removing.tmp")
    with DurableStorage(data_dir) as reopened:
        assert not leftover.exists()
        assert [s.index for s in reopened.list_snapshots()] == [3]
        assert reopened.load().snapshot == make_snapshot(3, 1)
