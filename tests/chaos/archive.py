"""Keeping the nodes' snapshot files that the event log replay may need to bridge a hole.

A node compacts its log at the index it has just applied, so entries applied right before a
snapshot can be gone before the collector reads them; if every node did so, no node can
report them. The archiver hard-links each new snapshot file from the nodes' data dirs (a
link outlives the node's own deletion of the file, at no copy cost) and keeps the ones a
hole may need: those past the merged log's contiguous prefix, and each one that bridged a
hole. The others are removed as the prefix grows, so the archive stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from pathlib import Path

from raft3d.storage.snapshot_file import InvalidSnapshotFile, read_snapshot_file

from .history import History

_FINAL_NAME = re.compile(r"snapshot-(\d{20})-(\d{20})\.snap")
SCAN_INTERVAL_S = 0.05
HOLE_PATIENCE_S = 10.0  # a hole this old is not going to be filled by a lagging node


class SnapshotArchiver:
    def __init__(self, data_dirs: dict[str, Path], dest: Path, history: History) -> None:
        self.data_dirs = data_dirs
        self.dest = dest
        self.history = history
        dest.mkdir(parents=True, exist_ok=True)
        self.archived: dict[int, Path] = {}
        self.bridges: set[int] = set()
        self.covered = 0  # the merged event log holds (or bridges) every index up to here
        self._stuck_since: float | None = None

    def scan(self) -> None:
        for node, data_dir in self.data_dirs.items():
            try:
                names = os.listdir(data_dir / "snapshots")
            except OSError:
                continue
            for name in names:
                match = _FINAL_NAME.fullmatch(name)
                if match is None or int(match[1]) in self.archived:
                    continue
                index = int(match[1])
                if index <= self.covered:
                    continue
                target = self.dest / f"{node}-{name}"
                try:
                    os.link(data_dir / "snapshots" / name, target)
                except FileExistsError:
                    pass
                except OSError:
                    continue  # removed meanwhile; another node's file may do
                self.archived[index] = target
        self._advance()

    def _advance(self) -> None:
        events = self.history.events
        while self.covered + 1 in events:
            self.covered += 1
        later = [i for i in events if i > self.covered + 1]
        if later:
            now = time.monotonic()
            if self._stuck_since is None:
                self._stuck_since = now
            elif now - self._stuck_since > HOLE_PATIENCE_S:
                resume = min(later)
                usable = sorted(i for i in self.archived if i >= resume - 1)
                if usable:
                    self.bridges.add(usable[0])
                    self.covered = usable[0]
                    self._stuck_since = None
                    self._advance()
                    return
        else:
            self._stuck_since = None
        for index in [i for i in self.archived if i <= self.covered and i not in self.bridges]:
            self.archived.pop(index).unlink(missing_ok=True)

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.scan()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SCAN_INTERVAL_S)  # polling interval

    def snapshots(self) -> dict[int, bytes]:
        """index -> the state machine's snapshot bytes, for every archived file still valid."""
        out: dict[int, bytes] = {}
        for index, path in sorted(self.archived.items()):
            try:
                _, snapshot = read_snapshot_file(path)
            except (InvalidSnapshotFile, OSError):
                continue
            out[index] = snapshot.data
        return out
