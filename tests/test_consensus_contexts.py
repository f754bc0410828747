"""Member contexts: an opaque blob per member (the driver's addresses), carried by the
configuration wherever it goes: conf entries, snapshots, InstallSnapshot messages."""

from __future__ import annotations

import msgpack
import pytest

from raft3d.consensus import (
    ConfState,
    EntryType,
    HardState,
    InitialState,
    Message,
    MsgType,
    Snapshot,
    SnapshotMeta,
)
from raft3d.consensus.membership import (
    ConfChange,
    ConfChangeType,
    apply_change,
    decode_conf_entry,
    encode_conf_entry,
)
from tests.support.cores import ABC, Net, make_core

ADD = ConfChangeType.ADD_LEARNER
PROMOTE = ConfChangeType.PROMOTE
REMOVE = ConfChangeType.REMOVE

CONTEXTS = {"a": b"addr-a", "b": b"addr-b", "c": b"addr-c"}


def test_add_sets_promote_keeps_and_remove_drops_the_context() -> None:
    conf = ConfState(("b", "a"), contexts=(("a", b"A"), ("b", b"B")))
    added = apply_change(conf, ConfChange(ADD, "aa", context=b"AA"))
    assert added.contexts == (("a", b"A"), ("aa", b"AA"), ("b", b"B"))  # sorted by node id
    assert added.context_of("aa") == b"AA"
    promoted = apply_change(added, ConfChange(PROMOTE, "aa", context=b"ignored"))
    assert promoted.voters == ("b", "a", "aa") and promoted.contexts == added.contexts
    removed = apply_change(promoted, ConfChange(REMOVE, "a"))
    assert removed.contexts == (("aa", b"AA"), ("b", b"B")) and removed.context_of("a") == b""


def test_conf_entries_carry_contexts_and_older_entries_without_them_still_decode() -> None:
    state = ConfState(ABC, ("d",), (), (("a", b"\x00\xff"), ("d", b"dd")))
    change = ConfChange(ADD, "d", context=b"dd")
    assert decode_conf_entry(encode_conf_entry(change, state)) == (change, state)
    old = msgpack.packb((1, "d", True, b"dd", list(ABC), ["d"], []), use_bin_type=True)
    assert decode_conf_entry(old) == (change, ConfState(ABC, ("d",)))
    bad = msgpack.packb((1, "d", True, b"", list(ABC), [], [], [["a"]]), use_bin_type=True)
    with pytest.raises(ValueError, match="malformed configuration entry"):
        decode_conf_entry(bad)


def test_bootstrap_contexts_seed_the_first_configuration() -> None:
    core = make_core("a", ABC, voter_contexts=CONTEXTS)
    assert core.conf_state.contexts == tuple(sorted(CONTEXTS.items()))
    with pytest.raises(ValueError, match="non-voters"):
        make_core("a", ABC, voter_contexts={"z": b"?"})


def test_contexts_replicate_through_the_log_and_reach_every_member() -> None:
    net = Net.of(voter_contexts=CONTEXTS)
    net.cores["d"] = make_core("d", (), seed=9)
    leader = net.elect("a")
    net.settle()
    leader.propose_conf_change(ConfChange(ADD, "d", auto_promote=False, context=b"addr-d"))
    net.settle()
    net.heartbeat_round("a")
    expected = tuple(sorted({**CONTEXTS, "d": b"addr-d"}.items()))
    for node, core in net.cores.items():
        assert core.conf_state.contexts == expected, node
    assert any(
        rd.conf_state is not None and rd.conf_state.context_of("d") == b"addr-d"
        for rd in net.readies["d"]
    )
    entry = next(e for e in net.applied["d"] if e.type is EntryType.CONF_CHANGE)
    assert decode_conf_entry(entry.data)[1].contexts == expected


def test_snapshots_and_install_snapshot_messages_carry_the_contexts() -> None:
    net = Net.of(voter_contexts=CONTEXTS)
    leader = net.elect("a")
    net.settle()
    snap = leader.compact(leader.applied_index, b"state")
    assert snap.meta.contexts == tuple(sorted(CONTEXTS.items()))
    assert snap.meta.conf_state == leader.conf_state
    msg = Message(MsgType.SNAP, "d", "a", 1, snapshot_meta=snap.meta, data=b"state", done=True)
    wired = Message.from_wire(msg.to_wire())
    assert wired.snapshot_meta == snap.meta
    # A joiner that installs the snapshot learns every member's context from it.
    joiner = make_core("d", ())
    joiner.step(wired)
    assert joiner.conf_state.contexts == snap.meta.contexts
    restored = make_core("e", (), InitialState(HardState(1, None, snap.meta.index), snap, []))
    assert restored.conf_state == snap.meta.conf_state


def test_install_snapshot_from_an_older_sender_without_contexts_decodes() -> None:
    fields = msgpack.unpackb(
        Message(MsgType.SNAP, "d", "a", 1, snapshot_meta=SnapshotMeta(3, 1, ABC)).to_wire()
    )
    fields[11] = fields[11][:5]  # index, term, voters, learners, manual: no contexts
    msg = Message.from_wire(msgpack.packb(fields, use_bin_type=True))
    assert msg.snapshot_meta == SnapshotMeta(3, 1, ABC)
    fields[11] = [3, 1, list(ABC), [], [], [["a", b"x"], ["a", b"y"]]]  # a node twice
    with pytest.raises(ValueError, match="malformed raft message"):
        Message.from_wire(msgpack.packb(fields, use_bin_type=True))


def test_snapshot_meta_of_a_configuration_round_trips() -> None:
    conf = ConfState(ABC, ("d",), ("d",), (("d", b"D"),))
    meta = SnapshotMeta.of(4, 2, conf)
    assert (meta.index, meta.term, meta.conf_state) == (4, 2, conf)
    assert Snapshot(meta, b"").meta.contexts == (("d", b"D"),)


def test_an_empty_context_is_not_stored() -> None:
    conf = apply_change(ConfState(ABC), ConfChange(ADD, "d"))
    assert conf == ConfState(ABC, ("d",)) and conf.context_of("d") == b""
