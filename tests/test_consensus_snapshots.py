"""Unit tests of the Raft core's snapshots, driven message by message: compaction, and a
snapshot sent to a laggard in chunks (from memory or from a file)."""

from __future__ import annotations

import pytest

from raft3d.consensus import (
    Entry,
    HardState,
    InitialState,
    Message,
    MsgType,
    Snapshot,
    SnapshotMeta,
)
from tests.support.cores import (
    ABC,
    Net,
    compacted_leader,
    drain,
    make_core,
)

# --- snapshots -------------------------------------------------------------------------------


def test_laggard_receives_the_snapshot_in_chunks() -> None:
    data = bytes(range(256)) * 4  # 1024 bytes: chunks of 300, 300, 300 and 124
    net, leader = compacted_leader(300, data)
    follower = net.cores["c"]
    net.take()
    heartbeats = net.tick_until("a", MsgType.HEARTBEAT)
    net.deliver([m for m in heartbeats if m.to == "c"])
    net.deliver(net.take(MsgType.HEARTBEAT_RESP))
    chunks: list[Message] = []
    while "c" not in net.installed:
        [chunk] = net.take(MsgType.SNAP)  # one chunk in flight at a time
        assert len(chunk.data) <= 300 and len(chunks) < 4
        chunks.append(chunk)
        net.deliver([chunk])
        net.flush("c")
        net.deliver(net.take(MsgType.SNAP_RESP))
    assert [m.offset for m in chunks] == [0, 300, 600, 900]
    assert chunks[-1].done and not any(m.done for m in chunks[:-1])
    assert b"".join(m.data for m in chunks) == data
    [installed] = net.installed["c"]
    assert installed.data == data and installed.meta.index == 5
    net.settle()
    assert follower.last_index == leader.last_index
    assert follower.commit_index == leader.commit_index
    assert [e.index for e in net.applied["c"]] == [6]  # after the snapshot


class ReadCounting:
    """A ``SnapshotData`` twin of a snapshot file: bytes read by range, reads counted."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.reads: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, part: slice, /) -> bytes:
        start, stop, _ = part.indices(len(self._data))
        self.reads.append((start, stop))
        return self._data[part]


def test_a_leader_serving_from_a_file_sends_its_chunks_even_mid_transfer() -> None:
    data = bytes(range(256)) * 4
    net, leader = compacted_leader(300, data)
    assert not leader.serve_from(4, ReadCounting(data))  # not the snapshot's index
    assert not leader.serve_from(5, ReadCounting(data[:-1]))  # not its data
    net.take()
    heartbeats = net.tick_until("a", MsgType.HEARTBEAT)
    net.deliver([m for m in heartbeats if m.to == "c"])
    net.deliver(net.take(MsgType.HEARTBEAT_RESP))
    [first] = net.take(MsgType.SNAP)  # sent from the bytes the core held
    file = ReadCounting(data)
    assert leader.serve_from(5, file)
    served = leader.served_snapshot
    assert served is not None and served.data is file and served.meta.index == 5
    chunks = [first]
    net.deliver([first])
    while "c" not in net.installed:
        net.flush("c")
        net.deliver(net.take(MsgType.SNAP_RESP))
        sent = net.take(MsgType.SNAP)
        if not sent:
            continue
        chunks.extend(sent)
        net.deliver(sent)
    assert file.reads == [(300, 600), (600, 900), (900, 1024)]
    assert b"".join(m.data for m in chunks) == data
    [installed] = net.installed["c"]
    assert installed.data == data


def snap_chunk(offset: int, data: bytes, done: bool, index: int = 5, term: int = 1) -> Message:
    meta = SnapshotMeta(index, 1, ABC)
    return Message(
        MsgType.SNAP, "c", "a", term, snapshot_meta=meta, offset=offset, data=data, done=done
    )


def test_out_of_order_chunk_is_refused_and_the_transfer_resumes_cleanly() -> None:
    core = make_core("c")
    core.step(snap_chunk(0, b"aaa", False))
    [ok] = drain(core).messages
    assert (ok.offset, ok.reject) == (3, False)
    core.step(snap_chunk(6, b"ccc", True))  # chunk at 3 was lost
    [refused] = drain(core).messages
    assert (refused.offset, refused.reject) == (3, True)
    core.step(snap_chunk(3, b"bbb", False))
    core.step(snap_chunk(3, b"bbb", False))  # a duplicate changes nothing
    core.step(snap_chunk(6, b"ccc", True))
    rd = drain(core)
    assert rd.snapshot is not None and rd.snapshot.data == b"aaabbbccc"
    assert rd.hard_state is not None and rd.hard_state.commit == 5
    assert rd.messages[-1].type is MsgType.SNAP_RESP and rd.messages[-1].done


def test_snapshot_transfer_restarts_when_the_leaders_snapshot_changes() -> None:
    core = make_core("c")
    core.step(snap_chunk(0, b"old", False, index=5))
    core.step(snap_chunk(0, b"new", False, index=7))  # the leader compacted further meanwhile
    core.step(snap_chunk(3, b"!", True, index=5))  # rest of the old one: no longer wanted
    rd = drain(core)
    assert rd.snapshot is None
    assert [(m.offset, m.reject) for m in rd.messages] == [(3, False), (3, False), (0, True)]
    core.step(snap_chunk(3, b"er", True, index=7))
    rd = drain(core)
    assert rd.snapshot is not None and rd.snapshot.data == b"newer"
    assert rd.snapshot.meta.index == 7


def test_compaction_keeps_trailing_entries_for_a_follower_slightly_behind() -> None:
    net = Net.of(trailing_entries=3)
    leader = net.elect("a")
    for k in range(2):
        leader.propose(b"p%d" % k)
    net.settle()
    b = net.cores["b"]
    assert b.applied_index == 3
    net.isolated.add("b")
    for k in range(2, 5):
        leader.propose(b"p%d" % k)
    net.settle()
    assert leader.applied_index == 6
    snap = leader.compact(6, b"state")
    assert snap.meta.index == leader.snapshot_index == 6
    assert leader.term_at(4) == 1 and leader.term_at(2) is None  # 4..6 kept below it
    net.isolated.clear()
    for _ in range(5):
        net.heartbeat_round("a")
    # b, three entries behind, is sent entries rather than the snapshot.
    assert "b" not in net.installed
    assert b.applied_index == 6 and b.snapshot_index == 0


def test_compaction_drops_the_log_prefix_and_restart_reemits_committed_entries() -> None:
    _, leader = compacted_leader(1024, b"state")
    assert leader.status().snapshot_index == 5
    assert leader.term_at(4) is None and leader.term_at(6) == 1
    with pytest.raises(ValueError):
        leader.compact(4, b"older")
    with pytest.raises(ValueError):
        leader.compact(leader.applied_index + 1, b"future")

    snapshot = Snapshot(SnapshotMeta(5, 1, ABC), b"state")
    state = InitialState(HardState(1, "a", 7), snapshot, [Entry(6, 1, b"p4"), Entry(7, 1)])
    restarted = make_core("a", state=state)
    assert restarted.applied_index == 5 and restarted.commit_index == 7
    rd = drain(restarted)
    assert [e.index for e in rd.committed_entries] == [6, 7]
    assert rd.entries == [] and rd.snapshot is None
