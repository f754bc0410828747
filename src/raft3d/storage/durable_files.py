"""Small helpers for making file system changes durable (POSIX)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from raft3d.storage.errors import StorageError


def fsync_directory(path: Path) -> None:
    """Make the creation, rename or removal of entries in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) so that its existence survives a crash."""
    if path.is_dir():
        return
    ensure_directory(path.parent)
    path.mkdir(exist_ok=True)
    fsync_directory(path.parent)


def lock_directory(path: Path) -> int:
    """Take an exclusive advisory lock on ``path/LOCK``; returns the fd that holds it.

    The kernel drops the lock when the process dies, so a crashed node never leaves it behind.
    """
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(f"data directory {path} is in use by another storage instance") from None
    except BaseException:
        os.close(fd)
        raise
    return fd
