"""What a follower holds in memory while it installs a large snapshot from its leader.

A follower node (real ``RaftNode``, SQLite log and snapshot files in a temp directory, the
farm's state machine; peers that never answer) in a process of its own is sent the
``stall_bench`` farm of ``--objects`` objects as a leader sends it: InstallSnapshot chunks of
``snapshot_chunk_bytes``, read from a file one at a time, so that only the follower's own
memory is measured. Reported: the process's RSS before the transfer, its peak RSS (VmHWM,
reset before the transfer) until the snapshot is installed, the RSS once installed, and the
peak's growth against the snapshot's size.

    .venv/bin/python -m benchmarks.install_memory_bench --objects 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tests.support.settings import node_settings
from tests.support.waiting import eventually

from benchmarks.stall_bench import farm_snapshot, vm_kb
from raft3d.consensus.types import Message, MsgType, SnapshotMeta
from raft3d.domain import FarmStateMachine
from raft3d.domain.results import Result
from raft3d.node.driver import RaftNode
from raft3d.node.memory import SilentTransport
from raft3d.node.wiring import node_options
from raft3d.storage import DurableStorage

LEADER, FOLLOWER = "a", "b"
VOTERS = (LEADER, FOLLOWER, "c")
SNAPSHOT_INDEX = 1000


def reset_peak_rss() -> None:
    """VmHWM starts again from the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


def mb(kb: int) -> float:
    return kb / 1024


async def follower_install(snapshot_file: Path, size: int, data_dir: Path) -> None:
    settings = node_settings(data_dir, FOLLOWER, VOTERS, election_timeout_ms=600_000)
    options = replace(node_options(settings), data_dir=None)
    chunk = settings.raft_settings.snapshot_chunk_bytes
    node: RaftNode[Result] = RaftNode(
        options, DurableStorage(data_dir), SilentTransport(), FarmStateMachine()
    )
    await node.start()
    pid = os.getpid()
    try:
        meta = SnapshotMeta(SNAPSHOT_INDEX, 1, VOTERS)
        before = vm_kb(pid, "VmRSS")
        reset_peak_rss()
        started, cpu_started = time.perf_counter(), time.process_time()
        fd = os.open(snapshot_file, os.O_RDONLY)
        try:
            for offset in range(0, size, chunk):
                data = os.pread(fd, chunk, offset)
                node.receive(
                    Message(
                        MsgType.SNAP,
                        FOLLOWER,
                        LEADER,
                        1,
                        snapshot_meta=meta,
                        offset=offset,
                        data=data,
                        done=offset + chunk >= size,
                    )
                )
                await asyncio.sleep(0)
        finally:
            os.close(fd)
        received = time.perf_counter() - started
        await eventually(
            lambda: node.applied_index >= SNAPSHOT_INDEX, 600, "the snapshot to be installed"
        )
        installed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        peak, after = vm_kb(pid, "VmHWM"), vm_kb(pid, "VmRSS")
        print(
            f"snapshot {size / 1e6:.1f} MB in {-(-size // chunk)} chunks; received in "
            f"{received:.1f} s, installed in {installed:.1f} s ({cpu:.1f} s of CPU)\n"
            f"follower RSS before {mb(before):.0f} MB, peak during the install "
            f"{mb(peak):.0f} MB, after {mb(after):.0f} MB; peak growth "
            f"{mb(peak - before):.0f} MB = {(peak - before) * 1024 / size:.2f}x the snapshot, "
            f"peak {peak * 1024 / size:.1f}x the snapshot"
        )
    finally:
        await node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        with tempfile.TemporaryDirectory(prefix="raft3d-install-") as tmp:
            asyncio.run(follower_install(args.child, args.child.stat().st_size, Path(tmp)))
        return
    with tempfile.TemporaryDirectory(prefix="raft3d-install-seed-") as tmp:
        snapshot_file = Path(tmp) / "farm.snapshot"
        snapshot_file.write_bytes(farm_snapshot(args.objects))
        print(f"farm: {args.objects} objects")
        child = [sys.executable, "-m", "benchmarks.install_memory_bench"]
        subprocess.run([*child, "--child", str(snapshot_file)], check=True)


if __name__ == "__main__":
    main()
