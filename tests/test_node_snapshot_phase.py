"""The nodes of a cluster snapshot at different indexes (``ReadyStep.snapshot_due`` with a
phase), not all at the same one: every node applies the same log, so with one threshold a
write's quorum always waited on a node busy snapshotting."""

from __future__ import annotations

import pytest

from raft3d.consensus.types import Entry, HardState, Ready
from raft3d.node.ready import ReadyStep
from raft3d.node.wiring import snapshot_phase
from tests.test_node_bookkeeping import Recorder

THRESHOLD = 30


def _step(phase: float | None) -> ReadyStep[str]:
    return ReadyStep(
        Recorder(),
        durable=HardState(1, "a", 0),
        applied=0,
        snapshot_threshold=THRESHOLD,
        snapshot_phase=phase,
        read_retry=1.0,
    )


def _snapshot_indexes(phase: float | None, entries: int, batch: int = 1) -> list[int]:
    """Where a node snapshots as it applies ``entries`` entries, ``batch`` per Ready."""
    step, taken = _step(phase), []
    for first in range(1, entries + 1, batch):
        step.finish(
            Ready(committed_entries=[Entry(i, 1, b"x") for i in range(first, first + batch)])
        )
        if step.snapshot_due():
            taken.append(step.applied)
            step.captured()
            step.compacted(step.applied)
    return taken


def test_without_a_phase_a_snapshot_comes_every_threshold_entries() -> None:
    assert _snapshot_indexes(None, 100) == [30, 60, 90]


@pytest.mark.parametrize(
    ("phase", "expected"),
    [(0.0, [30, 60, 90]), (1 / 3, [40, 70, 100]), (2 / 3, [20, 50, 80])],
)
def test_a_phase_puts_the_snapshots_at_its_own_points(phase: float, expected: list[int]) -> None:
    # Its first point at least half a threshold on: 40 for a phase of 10, not 10.
    assert _snapshot_indexes(phase, 100) == expected


def test_three_nodes_never_snapshot_at_the_same_index_and_each_keeps_its_rate() -> None:
    phases = [snapshot_phase(n, ["n1", "n2", "n3"]) for n in ("n1", "n2", "n3")]
    assert phases == [0.0, 1 / 3, 2 / 3]
    runs = [_snapshot_indexes(p, 3000, batch=7) for p in phases]
    for one in runs:
        assert 99 <= len(one) <= 101  # one per threshold, as without phases
    for a, b in ((0, 1), (0, 2), (1, 2)):
        gaps = [abs(x - y) for x in runs[a] for y in runs[b]]
        assert min(gaps) >= THRESHOLD // 3 - 7  # a third apart, give or take a batch


def test_a_node_outside_the_configured_members_gets_a_phase_from_its_id() -> None:
    phase = snapshot_phase("n9", ["n1", "n2", "n3"])
    assert 0.0 <= phase < 1.0
    assert phase == snapshot_phase("n9", ["n1"])
