"""The directory of snapshot files: atomic durable writes, scanning, removal."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from raft3d.consensus.types import Snapshot, SnapshotMeta
from raft3d.storage.durable_files import ensure_directory, fsync_directory
from raft3d.storage.file_removal import FileRemover
from raft3d.storage.snapshot_file import (
    InvalidSnapshotFile,
    SnapshotInfo,
    verify_snapshot_file,
)
from raft3d.storage.snapshot_stream import StreamedSnapshotFile, open_for

log = logging.getLogger(__name__)

_FINAL_NAME = re.compile(r"snapshot-(\d{20})-(\d{20})\.snap")
_TEMP_SUFFIX = ".tmp"
_WRITE_PART = 1 << 20  # a snapshot in memory goes to its file this much at a time


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
        self._remover = FileRemover(directory)

    def remove_temp_leftovers(self) -> list[Path]:
        """Remove files from writes that never reached their rename (a crash mid-write),
        and files a crash left half removed."""
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
        """Write ``snapshot`` durably: temp file (as ``streamed`` writes it, past the page
        cache), fsync, rename, fsync the directory.

        A file with the same index and term is replaced atomically.
        """
        written: list[SnapshotInfo] = []
        sink = self.streamed(snapshot.meta, created_at, on_finished=written.append)
        data = memoryview(snapshot.data)
        for start in range(0, len(data), _WRITE_PART):
            sink.write(data[start : start + _WRITE_PART])
        sink.finish()
        return written[0]

    def streamed(
        self,
        meta: SnapshotMeta,
        created_at: float,
        *,
        on_finished: Callable[[SnapshotInfo], None] = lambda info: None,
        guard: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> StreamedWrite:
        """Like ``write``, the data given part by part (``StreamedSnapshotFile``, past the
        page cache); ``on_finished`` is told of the durable file, each step runs under
        ``guard()``."""
        final = self.directory / snapshot_file_name(meta.index, meta.term)
        temp = self.directory / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        names = (temp, final)
        fd = open_for(temp, 0o644)
        return StreamedWrite(self.directory, fd, names, meta, created_at, on_finished, guard)

    def remove(self, paths: Iterable[Path]) -> None:
        """Best-effort removal, on a thread of its own (``raft3d.storage.file_removal``): a
        file that cannot be removed is only logged."""
        self._remover.remove(paths)

    def flush_removals(self) -> None:
        """Until every file handed to ``remove`` so far is gone."""
        self._remover.flush()

    def close(self) -> None:
        """Finish the removals handed over; the store is not used afterwards."""
        self._remover.close()


class StreamedWrite:
    """One snapshot file being written part by part (``SnapshotStore.streamed``): ``finish``
    makes it durable under its name (temp file, fsync, rename, fsync the directory); on any
    failure, or ``abort``, the temp file is removed."""

    def __init__(
        self,
        directory: Path,
        fd: int,
        names: tuple[Path, Path],
        meta: SnapshotMeta,
        created_at: float,
        on_finished: Callable[[SnapshotInfo], None],
        guard: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._directory, self._fd, (self._temp, self._final) = directory, fd, names
        self._meta, self._created_at = meta, created_at
        self._on_finished, self._guard = on_finished, guard
        try:
            self._file = StreamedSnapshotFile(fd, meta, created_at)
        except BaseException:
            self.abort()
            raise

    def write(self, part: bytes | memoryview) -> None:
        try:
            with self._guard():
                self._file.write(part)
        except BaseException:
            self.abort()
            raise

    def finish(self) -> None:
        try:
            with self._guard():
                size = self._file.finish()
                os.fsync(self._fd)
                self._close()
                os.replace(self._temp, self._final)
                fsync_directory(self._directory)
        except BaseException:
            self.abort()
            raise
        meta = self._meta
        self._on_finished(SnapshotInfo(meta.index, meta.term, size, self._created_at, self._final))

    def abort(self) -> None:
        self._close()
        self._temp.unlink(missing_ok=True)

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
