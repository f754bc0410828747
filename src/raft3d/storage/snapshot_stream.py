"""One snapshot file written as its data is produced, part by part, past the page cache
(a node's own as it is encoded; one received from the leader a slice at a time,
``SnapshotStore.write``).

The format is ``raft3d.storage.snapshot_file``'s. The data is never held whole: parts are
copied into one aligned block buffer, and each full block goes to the file with ``pwrite``
through a descriptor opened with ``O_DIRECT`` where the file system allows it (``open_for``).
The first block, which holds the room left for the header, is kept back and written last,
once the header (with the data's final length) and the checksum (the data's CRC-32,
summed as the parts go by, then over the header) are known; the file is then cut to its
exact size. Nothing is read back.

Why past the page cache: writing a 117 MB file through it cost the writer thread 80-370 ms
of CPU on this kind of machine (each write allocates and fills fresh page-cache pages, and
the system takes freed pages back between snapshots), against 16-30 ms written with
``O_DIRECT`` from the one reused buffer; at a snapshot every few seconds on each of three
nodes sharing two cores, that CPU came out of the write throughput. A file system that
refuses ``O_DIRECT`` (tmpfs, say), at open or at the first write, gets the same writes
through the page cache.

Data goes to disk every ``SYNC_EVERY_BYTES`` as it is written (see there); the caller owns
the final fsync and the rename.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import zlib
from pathlib import Path

from raft3d.consensus.types import SnapshotMeta
from raft3d.storage import snapshot_file
from raft3d.storage.snapshot_file import CHECKSUM, MAX_DATA_LEN, checksum_of, prefix_bytes

# Offsets and lengths of O_DIRECT writes are multiples of this (the logical block size of
# every common disk divides it), and the buffer is page-aligned (mmap).
ALIGN = 4096
BLOCK = 1 << 20
_DIRECT = getattr(os, "O_DIRECT", 0)


def open_for(path: Path, mode: int = 0o600) -> int:
    """Create ``path`` (it must not exist) write-only for a ``StreamedSnapshotFile``:
    with ``O_DIRECT`` where the platform and the file system have it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if _DIRECT:
        try:
            return os.open(path, flags | _DIRECT, mode)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    return os.open(path, flags, mode)


def is_direct(fd: int) -> bool:
    return bool(_DIRECT) and bool(fcntl.fcntl(fd, fcntl.F_GETFL) & _DIRECT)


class StreamedSnapshotFile:
    """Writes one snapshot file to ``fd`` (from ``open_for``, or any descriptor open for
    writing) as its data is given, ``write`` by ``write``; ``finish`` completes it."""

    def __init__(self, fd: int, meta: SnapshotMeta, created_at: float) -> None:
        self._fd, self._meta, self._created_at = fd, meta, created_at
        self._room = len(prefix_bytes(meta, created_at, MAX_DATA_LEN))  # the prefix's length
        self._data_offset = self._room + CHECKSUM.size
        size = max(BLOCK, -(-(self._data_offset + 1) // ALIGN) * ALIGN)
        self._block = mmap.mmap(-1, size)
        self._first: mmap.mmap | None = None  # the first block, kept back until ``finish``
        self._filled = self._data_offset  # bytes of the file image in ``_block``
        self._written = 0  # where ``_block`` goes in the file
        self._crc = 0
        self._unsynced = 0
        self.data_len = 0

    def write(self, part: bytes | memoryview) -> None:
        self._crc = zlib.crc32(part, self._crc)
        self.data_len += len(part)
        view = memoryview(part)
        while view:
            block = self._block  # a new one after the first is kept back
            n = min(len(block) - self._filled, len(view))
            block[self._filled : self._filled + n] = view[:n]
            self._filled += n
            view = view[n:]
            if self._filled == len(block):
                self._block_done()

    def finish(self) -> int:
        """Write the rest, the header and the checksum; returns the file's size."""
        prefix = prefix_bytes(self._meta, self._created_at, self.data_len, self._room)
        head = prefix + checksum_of(self._crc, prefix)
        end = self._written + self._filled  # the file image's end
        first = self._first
        if first is None:  # everything is in the first block
            first = self._block
        elif self._filled:
            self._pwrite(self._block, _aligned(self._filled), self._written)
        first[: len(head)] = head
        self._pwrite(first, min(len(first), _aligned(end)), 0)
        os.ftruncate(self._fd, end)
        self._block.close()
        if first is not self._block:
            first.close()
        return end

    def _block_done(self) -> None:
        if self._first is None:
            self._first = self._block
            self._block = mmap.mmap(-1, len(self._first))
        else:
            self._pwrite(self._block, len(self._block), self._written)
        self._unsynced += len(self._block)
        self._written += len(self._block)
        self._filled = 0
        if self._unsynced >= snapshot_file.SYNC_EVERY_BYTES:
            os.fdatasync(self._fd)
            self._unsynced = 0

    def _pwrite(self, buffer: mmap.mmap, length: int, offset: int) -> None:
        """Write ``buffer[:length]`` at ``offset`` (``length`` a multiple of ``ALIGN``; what
        lies past the data is cut off by ``finish``)."""
        with memoryview(buffer) as whole:
            view = whole[:length]
            done = 0
            while done < length:
                done += self._write_at(view[done:], offset + done)

    def _write_at(self, view: memoryview, offset: int) -> int:
        """One ``pwrite``; a direct write refused is done through the page cache instead,
        and so is every write after it."""
        try:
            return os.pwrite(self._fd, view, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not is_direct(self._fd):
                raise
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_DIRECT)
            return os.pwrite(self._fd, view, offset)


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN
