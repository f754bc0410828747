"""Durable storage for unit tests: entries and snapshots to store (``make_entries``,
``make_snapshot``), the ``data_dir`` and ``storage`` fixtures (registered for every test
module by ``tests/conftest.py``), and direct looks at what lies on disk (``query``,
``snapshot_files``, ``flip_byte``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from raft3d.consensus.types import Entry, Snapshot, SnapshotMeta
from raft3d.storage import DurableStorage
from tests.support.storage_model import StorageModel

VOTERS = ("n1", "n2", "n3")


def make_entries(first: int, last: int, term: int, tag: bytes = b"") -> list[Entry]:
    return [Entry(i, term, b"%s-%d-%d\x00\xff" % (tag, i, term)) for i in range(first, last + 1)]


def make_snapshot(index: int, term: int, data: bytes | None = None) -> Snapshot:
    payload = b"state@%d" % index if data is None else data
    return Snapshot(SnapshotMeta(index, term, VOTERS), payload)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node1"


@pytest.fixture
def storage(data_dir: Path) -> Iterator[DurableStorage]:
    with DurableStorage(data_dir) as opened:
        yield opened


def reopen_and_load(data_dir: Path) -> StorageModel:
    with DurableStorage(data_dir) as reopened:
        return StorageModel.read_from(reopened)


def snapshot_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "snapshots").iterdir())


def query(data_dir: Path, sql: str) -> tuple[object, ...] | None:
    """Run one statement directly against the log database (autocommit)."""
    with closing(sqlite3.connect(data_dir / "raft.db", isolation_level=None)) as db:
        row: tuple[object, ...] | None = db.execute(sql).fetchone()
        return row


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))
