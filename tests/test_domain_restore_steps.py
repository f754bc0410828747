"""Restoring a snapshot in steps (issue 8: a follower installing a big snapshot, or a node
starting from one, must not hold its event loop): the state is decoded a bounded number of
objects per step and replaces the old one only as the last step ends."""

from __future__ import annotations

import msgpack
import pytest

from raft3d.domain import FarmStateMachine
from raft3d.domain.errors import SnapshotDecodeError
from raft3d.domain.snapshot import RESTORE_STEP
from tests.support.farms import apply, busy_farm, printer
from tests.test_domain_capture import big_farm


def test_a_restore_runs_in_bounded_steps_and_swaps_the_state_only_at_the_end() -> None:
    source = big_farm(5 * RESTORE_STEP)
    data = source.snapshot()
    target = busy_farm()
    before = target.digest()
    steps = target.restorer(data)
    taken = 0
    for _ in steps:
        taken += 1
        assert target.digest() == before  # still the old state, readable and appliable
    assert taken >= 5  # one step per RESTORE_STEP objects at least
    assert target.digest() == source.digest()
    assert target.last_applied_index == source.last_applied_index
    assert target.snapshot() == data


def test_a_restore_dropped_part_way_changes_nothing() -> None:
    data = big_farm(4 * RESTORE_STEP).snapshot()
    target = busy_farm()
    before, index = target.digest(), target.last_applied_index
    steps = target.restorer(data)
    next(steps)
    next(steps)
    steps.close()
    assert target.digest() == before and target.last_applied_index == index
    apply(target, printer("after-close"))  # the old state still applies
    assert target.printer("after-close") is not None


def test_a_bad_object_late_in_the_snapshot_fails_the_restore_and_keeps_the_state() -> None:
    document = msgpack.unpackb(big_farm(3 * RESTORE_STEP).snapshot(), raw=False)
    document["state"]["printers"][-1]["model"] = 7
    data = msgpack.packb(document, use_bin_type=True)
    target = busy_farm()
    before = target.digest()
    with pytest.raises(SnapshotDecodeError, match="printer"):
        for _ in target.restorer(data):
            pass
    assert target.digest() == before


class Chunked:
    """Bytes read by range only, as a snapshot file is."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.reads = 0

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, part: slice, /) -> bytes:
        self.reads += 1
        return self._data[part]


def test_a_restore_reads_a_snapshot_by_byte_range_as_from_its_file() -> None:
    source = big_farm(3 * RESTORE_STEP)
    data = Chunked(source.snapshot())
    target = busy_farm()
    for _ in target.restorer(data):
        pass
    assert data.reads >= 1
    assert target.digest() == source.digest() and target.snapshot() == source.snapshot()
    with pytest.raises(SnapshotDecodeError, match="after the end"):
        for _ in FarmStateMachine().restorer(Chunked(source.snapshot() + b"\x00")):
            pass
