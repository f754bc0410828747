"""Nodes for the driver's tests, against real storage. Two kinds: a single voter (it elects
itself and commits alone), and a follower whose leader is scripted by the test: its peers do
not exist, so the test hands it the leader's messages (``deliver``, ``append``,
``whole_snapshot``) and reads what it sends from the transport it was given
(``RecordingTransport``, ``sent``). Its storage is real storage behind a gate
(``GatedStorage``), so what happens while a write is held on the disk thread is exercised
without relying on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import replace
from pathlib import Path

import msgpack

from raft3d.config import Settings
from raft3d.consensus.types import (
    Entry,
    HardState,
    InitialState,
    Message,
    MsgType,
    Snapshot,
    SnapshotData,
    SnapshotMeta,
)
from raft3d.node.driver import RaftNode
from raft3d.node.errors import NodeStoppedError
from raft3d.node.memory import SilentTransport
from raft3d.node.seams import SnapshotRecord, SnapshotSink
from raft3d.node.wiring import node_options
from raft3d.storage import DurableStorage
from raft3d.transport.proposals import PeerMessage
from tests.support.machines import EagerCapture, KeptOutcomes
from tests.support.settings import node_settings

LEADER = "a"
FOLLOWER = "b"
VOTERS = (LEADER, FOLLOWER, "c")

Node = RaftNode[tuple[int, bytes]]


class RecordingStateMachine(KeptOutcomes[tuple[int, bytes]]):
    """Applies by recording each command; ``apply`` returns a value derived from the input."""

    def __init__(self) -> None:
        super().__init__()
        self.last_index = 0
        self.commands: list[bytes] = []

    def apply(self, index: int, data: bytes) -> tuple[int, bytes]:
        self.last_index = index
        self.commands.append(data)
        return self.keep(index, (index, data.upper()))

    def capture(self) -> EagerCapture:
        return EagerCapture(self.snapshot())

    def snapshot(self) -> bytes:
        return msgpack.packb([self.last_index, self.commands])  # type: ignore[no-any-return]

    def restore(self, data: bytes) -> None:
        self.last_index, self.commands = msgpack.unpackb(data)

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # one step: a small state
        self.restore(data[0 : len(data)])


class GatedStorage:
    """Real storage whose ``persist`` can be held on the disk thread until released."""

    def __init__(self, inner: DurableStorage) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self._open = threading.Event()
        self._open.set()

    def close_gate(self) -> None:
        self.entered.clear()
        self._open.clear()

    def open_gate(self) -> None:
        self._open.set()

    def persist(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if not self._open.is_set():
            self.entered.set()
            self._open.wait()
        self.inner.persist(hard_state, entries, snapshot)

    def load(self) -> InitialState:
        return self.inner.load()

    def stage_local_snapshot(self, snapshot: Snapshot) -> None:
        self.inner.stage_local_snapshot(snapshot)

    def snapshot_data(self, index: int) -> SnapshotData | None:
        return self.inner.snapshot_data(index)

    def open_local_snapshot(self, meta: SnapshotMeta) -> SnapshotSink:
        return self.inner.open_local_snapshot(meta)

    def commit_local_snapshot(self, meta: SnapshotMeta) -> None:
        self.inner.commit_local_snapshot(meta)

    def save_local_snapshot(self, snapshot: Snapshot) -> None:
        self.inner.save_local_snapshot(snapshot)

    def first_index(self) -> int:
        return self.inner.first_index()

    def read_entries(self, after: int, limit: int) -> list[Entry]:
        return self.inner.read_entries(after, limit)

    def list_snapshots(self) -> Sequence[SnapshotRecord]:
        return self.inner.list_snapshots()

    def latest_snapshot(self) -> Snapshot | None:
        return self.inner.latest_snapshot()

    def close(self) -> None:
        self.inner.close()


class RecordingTransport(SilentTransport):
    """Peers that never answer; what the node sends is kept in ``sent``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Message] = []

    def send(self, msg: PeerMessage) -> bool:
        if type(msg) is Message:
            self.sent.append(msg)
            return True
        return False


def make_node(settings: Settings, machine: RecordingStateMachine) -> Node:
    storage = GatedStorage(DurableStorage(settings.data_dir))
    # No identity or amnesia stance: a blank follower the scripted leader appends to would
    # otherwise rightly take itself for a voter that lost its disk (see test_node_recovery).
    options = replace(node_options(settings), data_dir=None)
    return RaftNode(options, storage, RecordingTransport(), machine)


def gate(node: Node) -> GatedStorage:
    assert isinstance(node.storage, GatedStorage)
    return node.storage


def sent(node: Node) -> list[Message]:
    assert isinstance(node.transport, RecordingTransport)
    return node.transport.sent


def follower_settings(data_dir: Path, snapshot_threshold: int) -> Settings:
    """Node ``b`` of a three-voter cluster whose other members never answer.

    The election timeout is long so that the follower stays a follower of the scripted leader.
    """
    return node_settings(
        data_dir,
        FOLLOWER,
        VOTERS,
        election_timeout_ms=600_000,
        snapshot_threshold=snapshot_threshold,
    )


def append(prev_index: int, first: int, last: int, commit: int, term: int = 1) -> Message:
    entries = [Entry(i, term, f"cmd-{i}".encode()) for i in range(first, last + 1)]
    return Message(
        MsgType.APP,
        FOLLOWER,
        LEADER,
        term,
        log_term=term if prev_index else 0,
        index=prev_index,
        entries=entries,
        commit=commit,
    )


def whole_snapshot(index: int, term: int = 1) -> Message:
    """An InstallSnapshot transfer in one chunk: the state after commands 1..index."""
    state = msgpack.packb([index, [f"cmd-{i}".encode() for i in range(1, index + 1)]])
    return Message(
        MsgType.SNAP,
        FOLLOWER,
        LEADER,
        term,
        snapshot_meta=SnapshotMeta(index, term, VOTERS),
        offset=0,
        data=state,
        done=True,
    )


def deliver(node: Node, msg: Message) -> None:
    node.receive(msg)


def refuses_work(node: Node) -> bool:
    try:
        node.events(0, 1)
    except NodeStoppedError:
        return True
    return False
