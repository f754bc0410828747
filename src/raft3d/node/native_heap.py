"""The C allocator's share of a node's memory: fewer arenas, and free pages handed back.

Python's small objects come from its own allocator, but every larger buffer (a request body,
a snapshot slice, a batch of log entries read back, the snapshot file read for its SHA-256)
comes from the C library's ``malloc``. glibc gives each thread that allocates an arena of its
own (up to 8 per core) and keeps the pages freed in it for reuse: a node's disk thread,
snapshot writer and executor threads each held buffers' worth of pages the others could not
use. And it only returns freed memory at the top of an arena, so pages freed in the middle
stay resident.

``limit_arenas`` (at start-up, before any thread exists) caps the arenas; ``trim`` (after
each snapshot, the node's largest burst of buffers) returns every whole free page. Both do
nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger("raft3d.node")

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2  # the loop's thread and one shared by every other thread


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None  # not glibc: nothing to tune
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap malloc's arenas at ``arenas``; True if the C library took it."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return free pages of every arena to the system; True if any were returned. The
    call releases the GIL (ctypes) and can take milliseconds: not on the event loop."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
