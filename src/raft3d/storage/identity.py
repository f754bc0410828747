"""Who a data directory belongs to: ``identity.json``, written once, when it is first used.

It names the cluster (``cluster_id``), the node (``node_id``) and this particular data
directory (``incarnation``, random, new whenever a data directory is created). A node whose
disk was lost or wiped comes back with a new incarnation, so it and its peers can tell that it
forgot what it once acknowledged and voted (SPEC section 6); a directory carried to another
cluster or another node id is refused instead of silently joining.

The file is written to a temporary name, fsynced and renamed into place, so it is either
absent or complete. A file that exists but does not parse is an error, never replaced: that
would hide exactly the loss this file exists to reveal.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from raft3d.storage.durable_files import ensure_directory, fsync_directory
from raft3d.storage.errors import StorageCorruptError, StorageError

IDENTITY_FILE = "identity.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    cluster_id: str
    node_id: str
    incarnation: str
    created_at: float  # unix seconds, when this data directory got its identity


class IdentityMismatchError(StorageError):
    """The data directory belongs to another node or another cluster."""


def new_cluster_id() -> str:
    return secrets.token_hex(8)


def read_identity(data_dir: Path) -> NodeIdentity | None:
    """The directory's identity, or None if it has none yet (a new or wiped data dir)."""
    path = data_dir / IDENTITY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    try:
        fields = json.loads(raw)
        if not isinstance(fields, dict) or fields.get("version") != FORMAT_VERSION:
            raise ValueError("unknown format")
        identity = NodeIdentity(
            cluster_id=_text(fields, "cluster_id"),
            node_id=_text(fields, "node_id"),
            incarnation=_text(fields, "incarnation"),
            created_at=float(fields["created_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageCorruptError(f"{path} is damaged ({exc}); refusing to guess") from exc
    return identity


def load_or_create_identity(
    data_dir: Path, node_id: str, cluster_id: str | None = None
) -> tuple[NodeIdentity, bool]:
    """The directory's identity, created on first use; returns (identity, created).

    ``cluster_id`` is the cluster this node is meant to be part of: checked against a stored
    identity, and recorded in a new one (a fresh random id if None: a new cluster's first
    node). Raises ``IdentityMismatchError`` if the stored identity names another node or
    cluster.
    """
    existing = read_identity(data_dir)
    if existing is not None:
        if existing.node_id != node_id:
            raise IdentityMismatchError(
                f"data directory {data_dir} belongs to node {existing.node_id!r}, not {node_id!r}"
            )
        if cluster_id is not None and existing.cluster_id != cluster_id:
            raise IdentityMismatchError(
                f"data directory {data_dir} belongs to cluster {existing.cluster_id}, "
                f"not {cluster_id}"
            )
        return existing, False
    identity = NodeIdentity(
        cluster_id=cluster_id or new_cluster_id(),
        node_id=node_id,
        incarnation=secrets.token_hex(8),
        created_at=time.time(),
    )
    _write(data_dir, identity)
    return identity, True


def _write(data_dir: Path, identity: NodeIdentity) -> None:
    ensure_directory(data_dir)
    body = json.dumps(
        {
            "version": FORMAT_VERSION,
            "cluster_id": identity.cluster_id,
            "node_id": identity.node_id,
            "incarnation": identity.incarnation,
            "created_at": identity.created_at,
        },
        indent=2,
        sort_keys=True,
    ).encode()
    tmp = data_dir / (IDENTITY_FILE + ".tmp")
    try:
        with tmp.open("wb") as f:
            f.write(body + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, data_dir / IDENTITY_FILE)
        fsync_directory(data_dir)
    except OSError as exc:
        raise StorageError(f"cannot write {data_dir / IDENTITY_FILE}: {exc}") from exc


def _text(fields: dict[str, object], key: str) -> str:
    value = fields[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value
