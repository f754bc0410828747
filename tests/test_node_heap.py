"""The collector tuning of ``raft3d.node.heap``: full collections freeze what survives
them, so no later pass walks it again, and young passes stay small."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from raft3d.node import heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def tuned() -> Iterator[None]:
    before = gc.get_threshold()
    heap.tune_collector()
    try:
        yield
    finally:
        heap.untune_collector()
        gc.set_threshold(*before)
        gc.unfreeze()  # what the test froze goes back where the collector walks it


def tracked_unfrozen(obj: object) -> bool:
    return any(o is obj for gen in range(3) for o in gc.get_objects(gen))


def test_a_full_collection_freezes_its_survivors_and_reclaims_garbage(tuned: None) -> None:
    live = [Node() for _ in range(100)]
    garbage = Node()
    garbage.other = Node()
    garbage.other.other = garbage  # a cycle only the collector reclaims
    gone = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()
    gc.collect()
    assert gone() is None
    assert gc.get_freeze_count() >= frozen_before + len(live)
    # Frozen: no later pass of any generation walks it.
    assert not tracked_unfrozen(live[0])
    assert not tracked_unfrozen(live[-1])


def test_young_passes_freeze_nothing(tuned: None) -> None:
    young = [Node() for _ in range(10)]
    frozen_before = gc.get_freeze_count()
    gc.collect(0)
    gc.collect(1)
    assert gc.get_freeze_count() == frozen_before
    assert tracked_unfrozen(young[0])


def test_young_thresholds_are_below_the_defaults(tuned: None) -> None:
    young, middle, oldest = gc.get_threshold()
    assert (young, middle, oldest) == heap.THRESHOLDS
    assert young * middle < 700 * 10  # a middle pass walks fewer objects than by default
    assert middle * oldest < 10 * 10


def test_tuning_twice_installs_one_hook(tuned: None) -> None:
    heap.tune_collector()
    assert sum(cb is heap._freeze_survivors for cb in gc.callbacks) == 1


def test_capture_freezes_nothing_once_tuned(tuned: None) -> None:
    young = Node()
    frozen_before = gc.get_freeze_count()
    assert heap.after_capture() == 0.0
    assert gc.get_freeze_count() == frozen_before
    assert tracked_unfrozen(young)


def test_capture_settles_the_heap_when_not_tuned() -> None:
    assert not heap.collector_tuned()
    young = Node()
    try:
        heap.after_capture()
        assert gc.get_freeze_count() > 0
        assert not tracked_unfrozen(young)
    finally:
        gc.unfreeze()
