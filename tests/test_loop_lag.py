"""Event-loop lag: the ``raft3d_event_loop_lag_seconds`` histogram and the stall warning."""

from __future__ import annotations

import asyncio
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
        monitor.poke()  # a request arrives...
        hold_the_loop(0.25)  # ...and its handler holds the loop
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


async def test_an_idle_loop_is_sampled_at_the_idle_interval_until_poked() -> None:
    # The loop thread's CPU clock is a twin that does not move: how much CPU the test's own
    # polling costs on a loaded machine (it passed the 2 % share in CI) cannot decide this.
    monitor = LoopLagMonitor(interval_s=0.05, idle_interval_s=60.0, cpu_clock=lambda: 1.0)
    monitor.start()
    try:
        # Nothing happens on this loop between samples: the monitor backs off.
        await eventually(lambda: monitor.idle, what="the monitor to notice the loop is idle")
        samples = _count(monitor)
        assert _pending_in(monitor) > 30.0
        monitor.poke()  # a request came in: back to the short interval at once
        assert not monitor.idle and _pending_in(monitor) <= 0.05 + 1e-3
        await eventually(lambda: _count(monitor) > samples, what="a sample soon after")
    finally:
        monitor.stop()


async def test_a_busy_loop_keeps_the_short_interval() -> None:
    monitor = LoopLagMonitor(interval_s=0.01, idle_interval_s=60.0, idle_cpu_share=0.02)
    monitor.start()
    stop = False

    async def burn() -> None:
        while not stop:
            _spin(0.002)  # the loop thread busy most of the time
            await asyncio.sleep(0)

    burner = asyncio.create_task(burn())
    try:
        samples = _count(monitor)
        await eventually(lambda: _count(monitor) >= samples + 5, what="five samples")
        assert not monitor.idle
    finally:
        stop = True
        await burner
        monitor.stop()


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _pending_in(monitor: LoopLagMonitor) -> float:
    """Seconds until the monitor's next sample is due."""
    return monitor._due - asyncio.get_running_loop().time()


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
