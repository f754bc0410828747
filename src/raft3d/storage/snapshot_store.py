"""The directory of snapshot files: atomic durable writes, scanning, removal."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from raft3d.consensus.types import Snapshot
from raft3d.storage.durable_files import ensure_directory, fsync_directory
from raft3d.storage.snapshot_file import (
    InvalidSnapshotFile,
    SnapshotInfo,
    verify_snapshot_file,
    write_snapshot_file,
)

log = logging.getLogger(__name__)

_FINAL_NAME = re.compile(r"snapshot-(\d{20})-(\d{20})\.snap")
_TEMP_SUFFIX = ".tmp"


def snapshot_file_name(index: int, term: int) -> str:
    """Zero-padded so that names sort like (index, term)."""
    return f"snapshot-{index:020d}-{term:020d}.snap"


def newest_first(infos: Iterable[SnapshotInfo]) -> list[SnapshotInfo]:
    return sorted(infos, key=lambda s: (s.index, s.term, s.created_at), reverse=True)


class SnapshotStore:
    """Snapshot files in one directory. A file under its final name is always complete."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        ensure_directory(directory)

    def remove_temp_leftovers(self) -> list[Path]:
        """Remove files from writes that never reached their rename (a crash mid-write)."""
        leftovers = [
            p
            for p in self.directory.iterdir()
            if p.name.startswith(".snapshot-") and p.name.endswith(_TEMP_SUFFIX)
        ]
        self.remove(leftovers)
        return leftovers

    def scan(self) -> tuple[list[SnapshotInfo], list[Path]]:
        """Verify every snapshot file; returns the valid ones newest first, and the invalid."""
        valid: list[SnapshotInfo] = []
        invalid: list[Path] = []
        for path in sorted(self.directory.iterdir()):
            if not _FINAL_NAME.fullmatch(path.name):
                continue
            try:
                valid.append(verify_snapshot_file(path))
            except InvalidSnapshotFile as exc:
                log.warning("skipping invalid snapshot file %s: %s", path, exc)
                invalid.append(path)
        return newest_first(valid), invalid

    def write(self, snapshot: Snapshot, created_at: float) -> SnapshotInfo:
        """Write ``snapshot`` durably: temp file, fsync, rename, fsync the directory.

        A file with the same index and term is replaced atomically.
        """
        meta = snapshot.meta
        final = self.directory / snapshot_file_name(meta.index, meta.term)
        temp = self.directory / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                size = write_snapshot_file(f, snapshot, created_at)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_directory(self.directory)
        return SnapshotInfo(meta.index, meta.term, size, created_at, final)

    def remove(self, paths: Iterable[Path]) -> None:
        """Best-effort removal; a file that cannot be removed is only logged."""
        removed = False
        for path in paths:
            try:
                path.unlink(missing_ok=True)
                removed = True
            except OSError as exc:
                log.warning("cannot remove snapshot file %s: %s", path, exc)
        if removed:
            fsync_directory(self.directory)
