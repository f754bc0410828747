"""Crash safety of ``DurableStorage``: SIGKILL a writer process mid-batch, many times.

A child process (``storage_crash_writer.py``) writes random batches into one data directory and
announces each state before and after every storage call. The parent kills it at a random
moment while it writes, recovers the directory in-process and checks that what it finds is
exactly the last state announced durable, or exactly the state after the batch that was in
flight: a whole batch or nothing, never a part of one. The same directory is reused across
kills, so every run also recovers from the previous crash.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raft3d.storage import DurableStorage
from tests.support.storage_model import StorageModel

REPO_ROOT = Path(__file__).resolve().parents[1]
WRITER_MODULE = "tests.support.storage_crash_writer"
KILLS = int(os.environ.get("RAFT3D_CRASH_KILLS", "60"))
SEED = int(os.environ.get("RAFT3D_CRASH_SEED", "20240611"))
KILL_DELAY_S = (0.002, 0.25)  # after the writer is ready, while it writes
START_TIMEOUT_S = 30.0


@dataclass
class WriterRun:
    """What one writer process announced before it died."""

    ready_digest: str | None = None
    last_durable: tuple[int, str] | None = None  # (batch, digest)
    in_flight: tuple[int, str, str] | None = None  # (batch, kind, digest after)
    lines: list[str] = field(default_factory=list)

    def take(self, line: str) -> None:
        self.lines.append(line)
        word, *rest = line.split()
        if word == "ready":
            self.ready_digest = rest[0]
        elif word == "begin":
            self.in_flight = (int(rest[0]), rest[1], rest[2])
        elif word == "durable":
            batch, digest = int(rest[0]), rest[2]
            assert self.in_flight is not None and self.in_flight[0] == batch, line
            assert self.in_flight[2] == digest, line
            self.last_durable = (batch, digest)
            self.in_flight = None
        else:
            raise AssertionError(f"unexpected line from the writer: {line!r}")

    @property
    def durable_digest(self) -> str:
        if self.last_durable is not None:
            return self.last_durable[1]
        assert self.ready_digest is not None
        return self.ready_digest


class LineReader:
    """Reads complete lines from a child's stdout without blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = b""
        self.eof = False

    def read_until(self, deadline: float) -> list[str]:
        """Lines that arrive before ``deadline`` (or EOF); returns early once some arrive."""
        while not self.eof and time.monotonic() < deadline:
            if self._selector.select(timeout=max(0.0, deadline - time.monotonic())):
                lines = self._read_available()
                if lines:
                    return lines
        return []

    def read_to_eof(self, deadline: float) -> list[str]:
        lines: list[str] = []
        while not self.eof:
            assert time.monotonic() < deadline, "writer output did not end after its death"
            if self._selector.select(timeout=max(0.0, deadline - time.monotonic())):
                lines += self._read_available()
        return lines

    def _read_available(self) -> list[str]:
        try:
            chunk = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return []
        if not chunk:
            self.eof = True  # a line cut short by the kill stays in the buffer, ignored
            return []
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        return [line.decode() for line in complete]

    def close(self) -> None:
        self._selector.close()


def recovered_digest(data_dir: Path) -> str:
    with DurableStorage(data_dir) as storage:
        model = StorageModel.read_from(storage)
        assert storage.first_index() == model.base_index + 1
        assert storage.last_index() == model.last_index
        snapshots = storage.list_snapshots()
        if model.snapshot is None:
            assert snapshots == []
        else:
            assert (snapshots[0].index, snapshots[0].term) == (
                model.snapshot.meta.index,
                model.snapshot.meta.term,
            )
            assert len(snapshots) <= 2
        return model.digest()


def run_writer_and_kill(
    data_dir: Path, seed: int, delay_s: float, stderr_path: Path
) -> tuple[WriterRun, bool]:
    """Start a writer, let it write for ``delay_s``, SIGKILL it; returns what it announced and
    whether it was still running when killed."""
    run = WriterRun()
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", WRITER_MODULE, str(data_dir), str(seed)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    reader = LineReader(proc)
    try:
        start_deadline = time.monotonic() + START_TIMEOUT_S
        while run.ready_digest is None:
            lines = reader.read_until(start_deadline)
            assert lines or not reader.eof, f"writer died at start: {stderr_path.read_text()}"
            assert time.monotonic() < start_deadline, "writer did not become ready"
            for line in lines:
                run.take(line)
        kill_at = time.monotonic() + delay_s
        while time.monotonic() < kill_at and not reader.eof:
            for line in reader.read_until(kill_at):
                run.take(line)
        alive_at_kill = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=START_TIMEOUT_S)
        for line in reader.read_to_eof(time.monotonic() + START_TIMEOUT_S):
            run.take(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.close()
        assert proc.stdout is not None
        proc.stdout.close()
    return run, alive_at_kill


@pytest.mark.timeout(300)
def test_sigkill_mid_batch_recovers_a_whole_durable_prefix(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data_dir = tmp_path / "node"
    stderr_path = tmp_path / "writer.stderr"
    expected = StorageModel().digest()  # an empty directory to start with
    killed_in_flight = 0
    in_flight_survived = 0
    durable_batches = 0
    kinds_in_flight: set[str] = set()

    for kill in range(KILLS):
        seed = rng.randrange(1 << 32)
        run, alive = run_writer_and_kill(data_dir, seed, rng.uniform(*KILL_DELAY_S), stderr_path)
        context = f"kill #{kill} (writer seed {seed}, test seed {SEED})"
        assert alive, f"{context}: the writer had stopped before it was killed"
        assert run.ready_digest == expected, f"{context}: writer recovered a different state"

        found = recovered_digest(data_dir)
        durable_batches += 0 if run.last_durable is None else run.last_durable[0]
        if run.in_flight is not None:
            killed_in_flight += 1
            kinds_in_flight.add(run.in_flight[1])
            if found == run.in_flight[2]:
                in_flight_survived += 1
                expected = found
                continue
        assert found == run.durable_digest, (
            f"{context}: recovered state is neither the last durable one "
            f"(batch {run.last_durable}) nor the one after the batch in flight "
            f"({run.in_flight}); last lines: {run.lines[-3:]}"
        )
        expected = found

    # The kills really landed while batches were being written, of several kinds.
    assert killed_in_flight >= KILLS // 10, (killed_in_flight, KILLS)
    assert len(kinds_in_flight) >= 2, kinds_in_flight
    assert durable_batches >= KILLS, durable_batches
    print(
        f"{KILLS} kills, {durable_batches} durable batches, {killed_in_flight} mid-batch "
        f"({in_flight_survived} of those batches survived), kinds {sorted(kinds_in_flight)}"
    )
