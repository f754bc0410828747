"""The cluster configuration survives on disk: in snapshot files' headers and as
configuration-change entries in the log, from which a restarted core recovers it."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from raft3d.consensus import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from raft3d.consensus.membership import ConfChange, ConfChangeType, encode_conf_entry
from raft3d.storage import DurableStorage
from raft3d.storage.snapshot_file import InvalidSnapshotFile, read_snapshot_file
from raft3d.storage.snapshot_store import SnapshotStore
from tests.support.cores import make_core

META = SnapshotMeta(7, 2, ("n1", "n2", "n3"), ("n4", "n5"), ("n5",))


def test_snapshot_file_keeps_voters_learners_and_manual_learners(tmp_path: Path) -> None:
    path = SnapshotStore(tmp_path).write(Snapshot(META, b"state"), created_at=1.0).path
    _, loaded = read_snapshot_file(path)
    assert loaded.meta == META and loaded.meta.conf_state == ConfState(
        ("n1", "n2", "n3"), ("n4", "n5"), ("n5",)
    )


def test_snapshot_file_without_learners_reads_as_voters_only(tmp_path: Path) -> None:
    # A file as written before membership changes existed: no learners in its header.
    header = {"created_at": 1.0, "data_len": 1, "index": 7, "term": 2, "voters": ["n1"]}
    body = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    prefix = struct.pack("<8sHI", b"R3DSNAP\x00", 1, len(body)) + body
    path = tmp_path / "old"
    path.write_bytes(prefix + hashlib.sha256(prefix + b"s").digest() + b"s")
    _, loaded = read_snapshot_file(path)
    assert loaded.meta == SnapshotMeta(7, 2, ("n1",)) and loaded.meta.learners == ()


def test_a_restarted_core_recovers_the_configuration_from_the_stored_log(tmp_path: Path) -> None:
    conf = ConfState(("n1", "n2", "n3"), ("n4",), ())
    data = encode_conf_entry(ConfChange(ConfChangeType.ADD_LEARNER, "n4"), conf)
    change = Entry(2, 1, data, EntryType.CONF_CHANGE)
    with DurableStorage(tmp_path / "d") as storage:
        storage.persist(HardState(1, None, 1), [Entry(1, 1, b"", EntryType.NOOP), change])
    with DurableStorage(tmp_path / "d") as storage:
        state = storage.load()
    core = make_core("n2", ("n1", "n2", "n3"), state)
    assert core.conf_state == conf and core.conf_index == 2


def test_a_restarted_core_recovers_the_configuration_from_a_stored_snapshot(
    tmp_path: Path,
) -> None:
    with DurableStorage(tmp_path / "d") as storage:
        storage.persist(HardState(2, None, 7), [Entry(i, 2, b"x") for i in range(1, 8)])
        storage.save_local_snapshot(Snapshot(META, b"state"))
    with DurableStorage(tmp_path / "d") as storage:
        state = storage.load()
    core = make_core("n4", (), state)  # a joined node: no bootstrap configuration of its own
    assert core.conf_state == META.conf_state and core.conf_index == 7


def test_snapshot_file_keeps_member_contexts(tmp_path: Path) -> None:
    meta = SnapshotMeta(7, 2, ("n1", "n2"), ("n3",), (), (("n1", b"\x00a"), ("n3", b"\xffc")))
    path = SnapshotStore(tmp_path).write(Snapshot(meta, b"state"), created_at=1.0).path
    _, loaded = read_snapshot_file(path)
    assert loaded.meta == meta and loaded.meta.conf_state.context_of("n3") == b"\xffc"


def test_snapshot_file_without_contexts_reads_as_none(tmp_path: Path) -> None:
    # A file as written before member contexts existed.
    header = {
        "created_at": 1.0,
        "data_len": 1,
        "index": 7,
        "term": 2,
        "voters": ["n1"],
        "learners": ["n2"],
        "manual": [],
    }
    path = tmp_path / "old"
    path.write_bytes(_file_bytes(header))
    _, loaded = read_snapshot_file(path)
    assert loaded.meta == SnapshotMeta(7, 2, ("n1",), ("n2",)) and loaded.meta.contexts == ()


@pytest.mark.parametrize(
    "contexts", [{"n1": "AA=="}, [["n1"]], [["n1", "not base64!"]], [["n1", "AA=="]] * 2]
)
def test_snapshot_file_with_malformed_contexts_is_invalid(tmp_path: Path, contexts: object) -> None:
    header = {"created_at": 1.0, "data_len": 1, "index": 7, "term": 2, "voters": ["n1"]}
    path = tmp_path / "bad"
    path.write_bytes(_file_bytes({**header, "contexts": contexts}))
    with pytest.raises(InvalidSnapshotFile, match="contexts"):
        read_snapshot_file(path)


def _file_bytes(header: dict[str, object]) -> bytes:
    body = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    prefix = struct.pack("<8sHI", b"R3DSNAP\x00", 1, len(body)) + body
    return prefix + hashlib.sha256(prefix + b"s").digest() + b"s"
