"""The node's Prometheus collector: over a stand-in with the node's counters, and a real node."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from raft3d.domain.commands import CreatePrinter, encode_command
from raft3d.domain.results import Result
from raft3d.domain.state import FarmStateMachine
from raft3d.node.driver import RaftNode
from raft3d.node.metrics import PROPOSAL_RESULTS, NodeCollector
from raft3d.node.ready import NodeCounters
from raft3d.transport.stats import DROP_REASONS
from tests.support.fakes import running_single_voter

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class StandInTransport:
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class StandInNode:
    counters: NodeCounters = field(default_factory=NodeCounters)
    transport: StandInTransport = field(default_factory=StandInTransport)


def exposition(collector: NodeCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_exposition_of_a_fresh_node_has_every_series_at_zero() -> None:
    text = exposition(NodeCollector(StandInNode()))
    assert "# TYPE raft3d_elections_total counter" in text
    assert "# TYPE raft3d_snapshots_total counter" in text
    assert "# TYPE raft3d_proposals_total counter" in text
    assert "# TYPE raft3d_apply_duration_seconds summary" in text
    assert "# TYPE raft3d_transport_dropped_total counter" in text
    found = parse(text)
    assert found[("raft3d_elections_total", ())] == 0
    assert found[("raft3d_snapshots_total", ())] == 0
    for result in PROPOSAL_RESULTS:
        assert found[("raft3d_proposals_total", (("result", result),))] == 0
    for reason in DROP_REASONS:  # even when the transport has not counted it yet
        assert found[("raft3d_transport_dropped_total", (("reason", reason),))] == 0
    assert found[("raft3d_apply_duration_seconds_count", ())] == 0
    assert found[("raft3d_apply_duration_seconds_sum", ())] == 0


def test_counters_are_read_at_scrape_time() -> None:
    node = StandInNode()
    collector = NodeCollector(node)
    exposition(collector)  # an earlier scrape must not freeze the values
    node.counters.elections = 3
    node.counters.snapshots = 2
    node.counters.proposals["committed"] = 40
    node.counters.proposals["outcome_unknown"] = 2
    node.counters.proposals["not_leader"] = 5
    node.counters.applied_entries = 45
    node.counters.apply_seconds_total = 0.125
    node.transport.dropped.update({"queue_full": 7, "bad_mac": 1, "future_reason": 9})

    found = parse(exposition(collector))
    assert found[("raft3d_elections_total", ())] == 3
    assert found[("raft3d_snapshots_total", ())] == 2
    assert found[("raft3d_proposals_total", (("result", "committed"),))] == 40
    assert found[("raft3d_proposals_total", (("result", "outcome_unknown"),))] == 2
    assert found[("raft3d_proposals_total", (("result", "not_leader"),))] == 5
    assert found[("raft3d_apply_duration_seconds_count", ())] == 45
    assert found[("raft3d_apply_duration_seconds_sum", ())] == 0.125
    assert found[("raft3d_transport_dropped_total", (("reason", "queue_full"),))] == 7
    assert found[("raft3d_transport_dropped_total", (("reason", "bad_mac"),))] == 1
    # A reason the transport adds later is reported too, not silently lost.
    assert found[("raft3d_transport_dropped_total", (("reason", "future_reason"),))] == 9
    assert found[("raft3d_transport_dropped_total", (("reason", "replay"),))] == 0


def test_the_frozen_objects_gauge_follows_the_collectors_permanent_generation() -> None:
    collector = NodeCollector(StandInNode())
    assert "# TYPE raft3d_gc_frozen_objects gauge" in exposition(collector)
    held = [[n] for n in range(1000)]  # tracked objects, alive while frozen
    gc.freeze()
    try:
        frozen = parse(exposition(collector))[("raft3d_gc_frozen_objects", ())]
        assert frozen >= 1000
        gc.unfreeze()
        assert parse(exposition(collector))[("raft3d_gc_frozen_objects", ())] < frozen - 1000
    finally:
        gc.unfreeze()
    del held


def test_collector_does_not_depend_on_the_http_layer() -> None:
    probe = (
        "import sys, raft3d.node.metrics; "
        "print(sorted(m for m in sys.modules if m.startswith('raft3d.api')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


# --- a real single-voter node -------------------------------------------------------------


@pytest.fixture
async def real_node(tmp_path: Path) -> AsyncIterator[RaftNode[Result]]:
    async with running_single_voter(tmp_path, FarmStateMachine()) as node:
        yield node


async def test_collector_over_a_real_node(real_node: RaftNode[Result]) -> None:
    collector = NodeCollector(real_node)
    before = parse(exposition(collector))
    assert before[("raft3d_snapshots_total", ())] == 0
    assert ("raft3d_elections_total", ()) in before

    command = encode_command(CreatePrinter(id="p1", company="Prusa", model="MK4"))
    await real_node.propose(command, 5.0)
    assert await real_node.take_snapshot() == real_node.applied_index

    after = parse(exposition(collector))
    assert after[("raft3d_snapshots_total", ())] == 1
    assert after[("raft3d_proposals_total", (("result", "committed"),))] == 1
    # The leader's no-op and the printer: both went through apply.
    assert after[("raft3d_apply_duration_seconds_count", ())] == real_node.applied_index
    assert after[("raft3d_apply_duration_seconds_sum", ())] > 0
    dropped = {dict(labels)["reason"] for name, labels in after if "dropped" in name}
    assert dropped == set(DROP_REASONS)
