"""Removing stale snapshot files without holding up the log.

A snapshot file at a million objects is about 117 MB, and one is dropped after every
snapshot. Two costs came with that, both measured on this machine's ext4:

- ``unlink`` of a 117 MB file took 44-51 ms. It ran on the disk thread under the log's write
  lock, so every append of that node waited behind it.
- Even on another thread, a file freed in one piece is one large journal transaction: an
  fsync of the log beside it waited up to 25 ms. Cut down ``TRUNCATE_STEP`` at a time
  before the unlink, the slowest fsync beside it took 1.8 ms.

So files are removed on a thread of their own (``FileRemover``), in the order they were
handed over. Each file is first renamed aside (under a name recovery removes as a leftover),
so nothing opens it by its name any more. It is cut down in steps only when no descriptor
of this process still has it open: a laggard served from the file, or a download of it,
keeps reading it whole, as they could after a plain unlink. Then it is unlinked, and the
directory is synced once for the whole batch.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from raft3d.storage.durable_files import fsync_directory

log = logging.getLogger(__name__)

TRUNCATE_STEP = 2 << 20
# Names recovery removes as leftovers of an interrupted write (``SnapshotStore``).
ASIDE_PREFIX, ASIDE_SUFFIX = ".", ".removing.tmp"


class FileRemover:
    """Removes files on one thread, in order. ``flush`` waits for what was handed over."""

    def __init__(self, directory: Path, name: str = "raft-files") -> None:
        self._directory = directory
        self._thread = concurrent.futures.ThreadPoolExecutor(1, name)

    def remove(self, paths: Iterable[Path]) -> None:
        batch = list(paths)
        if batch:
            self._thread.submit(remove_files, self._directory, batch)

    def flush(self) -> None:
        self._thread.submit(lambda: None).result()

    def close(self) -> None:
        self._thread.shutdown(wait=True)


def remove_files(directory: Path, paths: Iterable[Path]) -> None:
    """Best-effort removal of ``paths`` (in ``directory``); a failure is only logged."""
    removed = False
    for path in paths:
        try:
            removed = _remove(path) or removed
        except OSError as exc:
            log.warning("cannot remove snapshot file %s: %s", path, exc)
    if removed:
        fsync_directory(directory)


def _remove(path: Path) -> bool:
    aside = path.with_name(f"{ASIDE_PREFIX}{path.name}{ASIDE_SUFFIX}")
    if path.name.endswith(ASIDE_SUFFIX):
        aside = path  # already aside: a leftover found by recovery
    else:
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return False
    try:
        fd = os.open(aside, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        stat = os.fstat(fd)
        if not _open_elsewhere(fd, stat):
            size = stat.st_size
            while size > TRUNCATE_STEP:
                size -= TRUNCATE_STEP
                os.ftruncate(fd, size)
    finally:
        os.close(fd)
    aside.unlink(missing_ok=True)
    return True


def _open_elsewhere(own: int, stat: os.stat_result) -> bool:
    """Whether a descriptor of this process other than ``own`` refers to the same file.
    Where that cannot be told (no ``/proc``), it is taken to be open."""
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return True
    for name in descriptors:
        if name == str(own):
            continue
        try:
            other = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue  # closed meanwhile, or the listing's own descriptor
        if (other.st_dev, other.st_ino) == (stat.st_dev, stat.st_ino):
            return True
    return False
