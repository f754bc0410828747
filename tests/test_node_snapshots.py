"""Snapshots on a real single-voter node: captured on the loop in O(1), encoded in slices, and
outcomes that live exactly as long as their log entries (issue 8, items 1 and 2)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from raft3d.consensus.types import Snapshot
from raft3d.domain import CreatePrinter, FarmStateMachine, encode_command
from raft3d.domain.results import Accepted, Rejected, Result
from raft3d.domain.snapshot import StateCapture
from raft3d.node import snapshotting
from raft3d.node.driver import RaftNode
from raft3d.node.wiring import build_node
from raft3d.storage import DurableStorage
from raft3d.storage.snapshot_store import SnapshotStore
from raft3d.storage.snapshot_stream import StreamedSnapshotFile
from tests.support.settings import node_settings
from tests.support.waiting import eventually


def command(n: int, company: str = "Creality") -> bytes:
    return encode_command(CreatePrinter(id=f"p{n}", company=company, model="M", idempotency=None))


@asynccontextmanager
async def solo_farm(data_dir: Path, **raft: Any) -> AsyncIterator[RaftNode[Result]]:
    node = build_node(node_settings(data_dir, **raft), FarmStateMachine())
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        yield node
    finally:
        await node.stop()


def outcomes(node: RaftNode[Result]) -> dict[int, object]:
    """Index -> outcome of every command entry the node holds."""
    page = node.events(node.storage.first_index() - 1, 1000)
    return {e.index: e.outcome for e in page.events if not e.is_noop}


def files(node: RaftNode[Result]) -> SnapshotStore:
    assert isinstance(node.storage, DurableStorage)
    return node.storage._snapshots


class SaveGate:
    """Holds ``save_local_snapshot`` on the disk thread until opened."""

    def __init__(self, node: RaftNode[Result], monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        real = node.storage.save_local_snapshot

        def save(snapshot: Snapshot) -> None:
            self.entered.set()
            self.opened.wait(30)
            real(snapshot)

        monkeypatch.setattr(node.storage, "save_local_snapshot", save)


async def test_no_outcome_goes_missing_while_a_snapshot_is_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with solo_farm(tmp_path, snapshot_threshold=0) as node:
        for n in range(10):
            await node.propose(command(n % 7))  # three duplicates: refused, still an outcome
        gate = SaveGate(node, monkeypatch)
        taking = asyncio.create_task(node.take_snapshot())
        await eventually(gate.entered.is_set, 10, "the snapshot save to start")
        during = outcomes(node)
        gate.opened.set()
        await taking
        after = outcomes(node)
    assert len(during) == 10 and None not in during.values()
    assert sum(isinstance(o, Rejected) for o in during.values()) == 3
    assert after == during  # the trailing entries keep their outcomes


async def test_a_restarted_node_still_reports_the_outcomes_of_its_trailing_entries(
    tmp_path: Path,
) -> None:
    async with solo_farm(tmp_path, snapshot_threshold=0, snapshot_trailing_entries=4) as node:
        for n in range(8):
            await node.propose(command(n))
        snapshot_index = await node.take_snapshot()
        await node.propose(command(100))
        before = outcomes(node)
        first = node.storage.first_index()
    assert first == snapshot_index - 3
    assert len(before) >= 5 and None not in before.values()
    async with solo_farm(tmp_path, snapshot_threshold=0, snapshot_trailing_entries=4) as again:
        assert again.storage.first_index() == first
        assert {i: o for i, o in outcomes(again).items() if i in before} == before


async def test_the_loop_encodes_in_slices_and_the_file_is_written_beside_the_disk_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshotting, "ENCODE_SLICE_S", 0.0)  # yield after every piece
    pieces: list[str] = []
    real_parts = StateCapture.parts

    def parts(self: StateCapture) -> Iterator[bytes]:
        for part in real_parts(self):
            pieces.append(threading.current_thread().name)
            yield part

    monkeypatch.setattr(StateCapture, "parts", parts)
    async with solo_farm(tmp_path, snapshot_threshold=0) as node:
        monkeypatch.setattr(
            node._sm, "snapshot", lambda: pytest.fail("whole-state encoding in one go")
        )
        writers: list[str] = []
        real_write = StreamedSnapshotFile.write

        def write(self: StreamedSnapshotFile, part: bytes) -> None:
            writers.append(threading.current_thread().name)
            real_write(self, part)

        monkeypatch.setattr(StreamedSnapshotFile, "write", write)
        for n in range(3):
            await node.propose(command(n))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        before = ticks
        await node.take_snapshot()
        ticker.cancel()
    assert len(pieces) > 10 and set(pieces) == {threading.main_thread().name}
    assert ticks - before >= len(pieces) - 1  # the loop ran other work between pieces
    # Written part by part as it is encoded (never whole), beside the disk thread.
    assert len(writers) > 1 and all(w.startswith("raft-snap-") for w in writers)
    # The captured state is long-lived: moved where the cyclic collector never walks it.
    assert gc.get_freeze_count() > 0


async def test_writes_commit_while_a_snapshot_file_is_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with solo_farm(tmp_path, snapshot_threshold=0) as node:
        await node.propose(command(1))
        entered, opened = threading.Event(), threading.Event()
        real_finish = StreamedSnapshotFile.finish

        def slow_finish(self: StreamedSnapshotFile) -> int:
            entered.set()
            opened.wait(30)  # a large file and its fsync, as slow as a busy disk makes them
            return real_finish(self)

        monkeypatch.setattr(StreamedSnapshotFile, "finish", slow_finish)
        taking = asyncio.create_task(node.take_snapshot())
        try:
            await eventually(entered.is_set, 10, "the snapshot file write to start")
            # The log's appends do not queue behind the file write.
            result = await asyncio.wait_for(node.propose(command(2)), 10)
            assert isinstance(result, Accepted)
        finally:
            opened.set()
            await taking
        assert node.storage.latest_snapshot() is not None


async def test_the_threshold_waits_for_the_log_to_weigh_against_the_snapshot(
    tmp_path: Path,
) -> None:
    big = "x" * 2000
    async with solo_farm(tmp_path, snapshot_threshold=3, snapshot_log_ratio=1.0) as node:
        for n in range(3):
            await node.propose(command(n, company=big))  # ~6 kB of log: first snapshot due
        await eventually(
            lambda: node.status().snapshot_index >= 3 and node._snapshots.pending is None,
            10,
            "the first snapshot, saved to its end",
        )
        first = node.status().snapshot_index
        size = node.step.snapshot_bytes
        assert size > 6000  # the state, and the outcomes of the entries still held
        for n in range(3, 10):  # well past the entry threshold, but a tiny log
            await node.propose(command(n))
        assert node._snapshots.pending is None and node.status().snapshot_index == first
        n = 10
        while node.status().snapshot_index == first and n < 40:  # the log grows past its size
            await node.propose(command(n, company=big))
            n += 1
        await eventually(lambda: node.status().snapshot_index > first, 10, "a second snapshot")
        assert node.counters.snapshots == 2
        assert all(isinstance(o, Accepted) for o in outcomes(node).values())
