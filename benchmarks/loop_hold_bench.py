"""How long one big read holds the event loop: lists and the snapshot download.

In one process: the real HTTP app over the in-memory node of the tests, a farm of N print
jobs, and a ticker task that runs once per loop iteration. For each request the longest gap
between two ticks is the longest time the loop was held while it was answered (the request
and the client reading it share the loop, so the client's own work is included).

For comparison, ``one-shot encode`` is what the old handler did on the loop: one
``json.dumps`` of the whole array.

    .venv/bin/python -m benchmarks.loop_hold_bench --jobs 100000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.support.fakes import FakeNode, make_app
from tests.test_api_listing import farm_state

from raft3d.domain.commands import CreatePrinter, encode_command
from raft3d.domain.state import FarmStateMachine


class GapTicker:
    """Longest gap between two ticks, in wall time and in the loop thread's CPU time (the
    latter leaves out time the OS gave other processes: the machine is shared)."""

    def __init__(self) -> None:
        self.max_gap = self.max_cpu_gap = 0.0
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()

    async def run(self) -> None:
        while True:
            now, cpu = time.perf_counter(), time.thread_time()
            self.max_gap = max(self.max_gap, now - self._last)
            self.max_cpu_gap = max(self.max_cpu_gap, cpu - self._last_cpu)
            self._last, self._last_cpu = now, cpu
            await asyncio.sleep(0)

    def reset(self) -> None:
        self.max_gap = self.max_cpu_gap = 0.0
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()


async def measure(
    client: TestClient[web.Request, web.Application], ticker: GapTicker, url: str
) -> tuple[float, float, float, int]:
    await asyncio.sleep(0.05)
    ticker.reset()
    started = time.perf_counter()
    response = await client.get(url)
    body = await response.read()
    took = time.perf_counter() - started
    assert response.status == 200, body[:200]
    return ticker.max_gap, ticker.max_cpu_gap, took, len(body)


async def main(jobs: int, rounds: int, freeze: bool) -> None:
    state: FarmStateMachine = farm_state(jobs)
    if freeze:
        gc.collect()
        gc.freeze()  # the farm is long-lived: the collector need not walk it every time
    node = FakeNode("n1", state)
    # One applied entry, so that there is something to snapshot.
    await node.propose(encode_command(CreatePrinter("extra", "Prusa", "MK4")), 1.0)
    await node.take_snapshot()
    one_shot = []
    for _ in range(rounds):
        started = time.perf_counter()
        json.dumps([job.to_dict() for job in state.print_jobs()])
        one_shot.append(time.perf_counter() - started)
    print(f"farm: {jobs} print jobs; one-shot encode on the loop: {min(one_shot) * 1000:.0f} ms")
    async with TestClient(TestServer(make_app(node))) as client:
        ticker = GapTicker()
        task = asyncio.create_task(ticker.run())
        try:
            for url in (
                "/api/v1/print_jobs?consistency=local",
                "/api/v1/print_jobs?consistency=local&status=queued",
                f"/api/v1/print_jobs?consistency=local&after=j{jobs - 10}&limit=5",
                "/api/v1/print_jobs?consistency=local&limit=1000",
                "/cluster/snapshots/latest",
            ):
                runs = [await measure(client, ticker, url) for _ in range(rounds)]
                gap, cpu, took = (sorted(r[i] for r in runs)[len(runs) // 2] for i in range(3))
                print(
                    f"{url:<62} max hold {gap * 1000:6.1f} ms wall {cpu * 1000:6.1f} ms cpu  "
                    f"request {took * 1000:5.0f} ms  body {runs[0][3] / 1e6:5.1f} MB"
                )
        finally:
            task.cancel()
    print(f"(medians of {rounds} runs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() the farm first")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.rounds, args.freeze))
