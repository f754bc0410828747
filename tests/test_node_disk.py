"""The disk thread (``raft3d.node.disk``): jobs run off the loop, one at a time, in the
order handed over, their results and errors reach the loop; ``waiting`` tells a restore
when to let go of the GIL (it idles between its slices only then); a node runs with a
short switch interval; and a plain append costs the log database no DELETE (one sqlite call
less, each of which makes the disk thread take the GIL back)."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from raft3d.consensus.types import Entry, HardState, Snapshot, SnapshotData, SnapshotMeta
from raft3d.node import restoring
from raft3d.node.disk import SWITCH_INTERVAL_S, DiskThread, tune_switch_interval
from raft3d.node.driver import RaftNode
from raft3d.node.memory import MemoryNetwork, MemoryStorage, MemoryTransport
from raft3d.node.options import NodeOptions
from raft3d.node.ready import ReadyStep
from raft3d.node.wiring import core_config
from raft3d.storage import DurableStorage
from tests.support.machines import Register
from tests.support.settings import FAST_RAFT
from tests.support.waiting import eventually


@pytest.fixture
def disk() -> Iterator[DiskThread]:
    thread = DiskThread("test-disk")
    yield thread
    thread.shutdown()


async def test_jobs_run_in_order_on_one_thread_that_is_not_the_loops(disk: DiskThread) -> None:
    ran: list[tuple[int, int | None]] = []

    def job(n: int) -> int:
        ran.append((n, threading.get_ident()))
        return n * 10

    results = await asyncio.gather(*(disk.run(job, n) for n in range(50)))
    assert results == [n * 10 for n in range(50)]
    assert [n for n, _ in ran] == list(range(50))
    threads = {ident for _, ident in ran}
    assert len(threads) == 1 and threading.get_ident() not in threads


async def test_an_error_reaches_the_awaiting_loop_and_later_jobs_still_run(
    disk: DiskThread,
) -> None:
    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await disk.run(fail)
    assert await disk.run(lambda: "after") == "after"


async def test_waiting_while_a_job_is_queued_or_running_and_not_after(disk: DiskThread) -> None:
    def waiting() -> bool:
        return disk.waiting

    assert not waiting()
    release = threading.Event()
    first = disk.run(release.wait, 10.0)
    second = disk.run(lambda: None)
    assert waiting()
    release.set()
    await first
    await second
    await eventually(lambda: not disk.waiting, 5, "the disk thread idle")


async def test_it_is_an_executor_for_run_in_executor(disk: DiskThread) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(disk, sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await loop.run_in_executor(disk, divmod, 1, 0)


async def test_shutdown_runs_what_is_queued_then_refuses_more() -> None:
    disk = DiskThread("test-disk")
    release = threading.Event()
    done: list[int] = []
    disk.submit(release.wait, 10.0)
    for n in range(3):
        disk.submit(done.append, n)
    release.set()
    disk.shutdown(wait=True)
    assert done == [0, 1, 2]
    with pytest.raises(RuntimeError, match="shut down"):
        disk.submit(done.append, 3)


def test_the_switch_interval_is_lowered_never_raised() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        tune_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S, rel=0.01)
        sys.setswitchinterval(0.0001)
        tune_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.01)
    finally:
        sys.setswitchinterval(before)


async def test_a_started_node_runs_with_the_short_switch_interval() -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default: the disk thread waited up to 5 ms
    options = NodeOptions(
        core=core_config("a", ("a",), FAST_RAFT),
        tick_s=FAST_RAFT.tick_ms / 1000,
        snapshot_threshold=0,
        default_timeout_s=5.0,
    )
    transport = MemoryTransport(MemoryNetwork(), "a", lambda msg: None, lambda p, up: None)
    node: RaftNode[int] = RaftNode(
        options, MemoryStorage(), transport, Register(), rng=random.Random(1)
    )
    await node.start()
    try:
        assert sys.getswitchinterval() <= SWITCH_INTERVAL_S * 1.01
        await eventually(lambda: node.is_leader, 10, "a single node leading")
        assert await node.propose(b"7") == 7  # its write went through the disk thread
    finally:
        await node.stop()
        sys.setswitchinterval(before)


def test_a_plain_append_runs_no_delete_but_a_conflicting_one_does(tmp_path: Path) -> None:
    with DurableStorage(tmp_path / "data") as storage:
        statements: list[str] = []
        storage._db._conn.set_trace_callback(statements.append)
        storage.persist(HardState(1, "a", 0), [Entry(1, 1, data=b"x"), Entry(2, 1, data=b"y")])
        storage.persist(None, [Entry(3, 1, data=b"z")])
        assert not [s for s in statements if s.lstrip().upper().startswith("DELETE")]
        storage.persist(HardState(2, "b", 0), [Entry(2, 2, data=b"w")])  # replaces 2 and 3
        assert [s for s in statements if s.lstrip().upper().startswith("DELETE")]
        storage._db._conn.set_trace_callback(None)
        assert [(e.index, e.term, e.data) for e in storage.read_entries(0, 10)] == [
            (1, 1, b"x"),
            (2, 2, b"w"),
        ]


class SlowRestore(Register):
    """Each restore step takes longer than a slice: the restore yields after every one."""

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        for _ in range(4):
            end = time.perf_counter() + restoring.RESTORE_SLICE_S * 1.5
            while time.perf_counter() < end:
                pass  # CPU work, as a restore's is
            yield
        self.restore(data[0 : len(data)])


@pytest.mark.parametrize("disk_busy", [False, True])
async def test_a_restore_idles_between_its_slices_only_while_the_disk_has_work(
    monkeypatch: pytest.MonkeyPatch, disk_busy: bool
) -> None:
    delays: list[float] = []

    class RecordingAsyncio:
        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        @staticmethod
        async def sleep(delay: float) -> None:
            delays.append(delay)
            await asyncio.sleep(delay)

    monkeypatch.setattr(restoring, "asyncio", RecordingAsyncio())
    machine = SlowRestore()
    step: ReadyStep[int] = ReadyStep(
        machine, durable=HardState(), applied=0, snapshot_threshold=0, read_retry=1.0
    )
    errors: list[BaseException] = []
    restorer = restoring.Restorer(
        "a", machine, step, wake=lambda: None, on_error=errors.append,
        disk_waiting=lambda: disk_busy,
    )  # fmt: skip
    restorer.start(Snapshot(SnapshotMeta(5, 1, ("a",)), b"42"))
    await eventually(lambda: not restorer.active, 10, "the restore to end")
    assert not errors and machine.value == 42 and step.applied == 5
    assert len(delays) >= 3  # a yield after each slice
    if disk_busy:
        assert set(delays) == {restoring.RESTORE_GAP_S}  # the disk thread gets the GIL
    else:
        assert set(delays) == {0}  # nothing waits for the GIL: the restore goes straight on
