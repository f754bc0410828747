"""``raft3d.node.native_heap``: the C allocator's arenas capped, its free pages returned."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

from raft3d.node import native_heap

glibc = pytest.mark.skipif(
    sys.platform != "linux" or ctypes.util.find_library("c") is None, reason="glibc only"
)


@glibc
def test_free_pages_in_the_middle_of_the_heap_are_returned() -> None:
    # Blocks above Python's small-object size come from malloc; keeping every tenth alive
    # leaves free pages between live blocks, which only a trim hands back.
    blocks = [bytes(4096) for _ in range(20_000)]
    kept = blocks[::10]
    del blocks
    assert native_heap.trim() is True
    assert len(kept) == 2_000


@glibc
def test_arenas_are_capped_in_a_fresh_process() -> None:
    code = "from raft3d.node.native_heap import limit_arenas; print(limit_arenas())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
