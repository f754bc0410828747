"""The data directory's identity: cluster id, node id and incarnation, written at first use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from raft3d.storage import StorageCorruptError
from raft3d.storage.identity import (
    IDENTITY_FILE,
    IdentityMismatchError,
    load_or_create_identity,
    read_identity,
)


def test_first_start_writes_the_identity(tmp_path: Path) -> None:
    data_dir = tmp_path / "n1"
    assert read_identity(data_dir) is None
    identity, created = load_or_create_identity(data_dir, "n1", "c0ffee")
    assert created and identity.node_id == "n1" and identity.cluster_id == "c0ffee"
    stored = json.loads((data_dir / IDENTITY_FILE).read_text())
    assert stored["incarnation"] == identity.incarnation and stored["version"] == 1
    assert sorted(p.name for p in data_dir.iterdir()) == [IDENTITY_FILE]  # no temp file left


def test_a_new_cluster_gets_a_random_id_and_restarts_keep_everything(tmp_path: Path) -> None:
    first, created = load_or_create_identity(tmp_path / "a", "n1")
    other, _ = load_or_create_identity(tmp_path / "b", "n1")
    assert created and first.cluster_id != other.cluster_id
    again, created = load_or_create_identity(tmp_path / "a", "n1")
    assert not created and again == first
    same, _ = load_or_create_identity(tmp_path / "a", "n1", first.cluster_id)
    assert same == first


def test_a_wiped_data_dir_comes_back_as_a_new_incarnation(tmp_path: Path) -> None:
    data_dir = tmp_path / "n1"
    before, _ = load_or_create_identity(data_dir, "n1", "c1")
    shutil.rmtree(data_dir)
    after, created = load_or_create_identity(data_dir, "n1", "c1")
    assert created and after.incarnation != before.incarnation
    assert (after.cluster_id, after.node_id) == (before.cluster_id, before.node_id)


def test_a_data_dir_of_another_node_or_cluster_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "n1"
    original, _ = load_or_create_identity(data_dir, "n1", "c1")
    with pytest.raises(IdentityMismatchError, match="belongs to node 'n1', not 'n2'"):
        load_or_create_identity(data_dir, "n2", "c1")
    with pytest.raises(IdentityMismatchError, match="belongs to cluster c1, not c2"):
        load_or_create_identity(data_dir, "n1", "c2")
    assert read_identity(data_dir) == original


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"version": 1, "node_id": "n1"}', b'{"version": 9}'],
)
def test_a_damaged_identity_is_an_error_and_is_left_alone(tmp_path: Path, content: bytes) -> None:
    data_dir = tmp_path / "n1"
    data_dir.mkdir()
    (data_dir / IDENTITY_FILE).write_bytes(content)
    with pytest.raises(StorageCorruptError, match="damaged"):
        load_or_create_identity(data_dir, "n1", "c1")
    assert (data_dir / IDENTITY_FILE).read_bytes() == content
