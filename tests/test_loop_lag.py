"""Event-loop lag: the ``raft3d_event_loop_lag_seconds`` histogram and the stall warning."""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from raft3d.loop_lag import LoopLagMonitor
from tests.support.procs import ProcessCluster, wait_until
from tests.support.waiting import eventually


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # the stall under test: a step that blocks the loop


async def test_a_step_over_100_ms_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    monitor.start()
    try:
        await eventually(lambda: _count(monitor) >= 1, what="a first lag sample")
        caplog.set_level(logging.WARNING, logger="raft3d.loop")
        hold_the_loop(0.25)
        await eventually(
            lambda: any("event loop held for" in r.getMessage() for r in caplog.records),
            what="the stall warning",
        )
    finally:
        monitor.stop()
    assert monitor.max_lag_s >= 0.2
    # A sleeping hold used no CPU: the warning tells it from a step that computed.
    warning = next(r.getMessage() for r in caplog.records if "held for" in r.getMessage())
    cpu_ms = float(warning.split("used ")[1].split(" ms of CPU")[0])
    held_ms = float(warning.split("held for ")[1].split(" ms")[0])
    assert cpu_ms < held_ms
    registry = CollectorRegistry()
    registry.register(monitor.histogram)
    text = generate_latest(registry).decode()
    assert 'raft3d_event_loop_lag_seconds_bucket{le="0.1"}' in text
    # The stall landed above the 0.1 s bucket: +Inf counts one more sample than 0.1 s does.
    counts = {
        line.split('le="')[1].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("raft3d_event_loop_lag_seconds_bucket")
    }
    assert counts["+Inf"] > counts["0.1"]


def _count(monitor: LoopLagMonitor) -> float:
    for sample in next(iter(monitor.histogram.collect())).samples:
        if sample.name.endswith("_count"):
            return float(sample.value)
    return 0.0


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 1) as cluster:
        cluster.start()
        yield cluster


def test_a_node_reports_loop_lag_on_metrics(node: ProcessCluster) -> None:
    n1 = node.nodes["n1"]
    node.wait_for_leader(timeout=30)

    def scraped() -> str | None:
        with urllib.request.urlopen(f"{n1.url}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
        return text if "raft3d_event_loop_lag_seconds_count" in text else None

    text = wait_until(scraped, 10, "the loop lag histogram")
    assert "# TYPE raft3d_event_loop_lag_seconds histogram" in text
