"""HTTP benchmark of the Raft3D service on a real 3-node cluster (fsync on).

Measures POST /api/v1/printers with distinct ids at concurrency 1, 8 and 64 against the
leader (writes/s, p50/p99 latency), then failover: SIGKILL the leader while a client
re-sends a write every 10 ms to the survivors without waiting for earlier attempts; the
failover time is the first 2xx answer after the kill. The killed node is restarted and
allowed to catch up between rounds.

    .venv/bin/python -m benchmarks.http_bench [--seconds 10] [--rounds 10]
    .venv/bin/python -m benchmarks.http_bench --target http://127.0.0.1:8080 --rounds 0
    .venv/bin/python -m benchmarks.http_bench --client wrk   # needs wrk (apt-get install wrk)

The default client is aiohttp in this process; at concurrency 1 its own CPU time is part of
every measured latency. ``--client wrk`` drives the same requests from wrk (C) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import uvloop
from tests.support.procs import ProcessCluster, wait_until


async def load(url: str, concurrency: int, seconds: float) -> tuple[float, float, float, int]:
    """Returns writes/s, p50 ms, p99 ms and the number of non-2xx answers."""
    prefix = uuid.uuid4().hex[:8]
    counter = itertools.count()
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                body = {"id": f"{prefix}-{next(counter)}", "company": "Bench", "model": "B1"}
                started = time.perf_counter()
                async with session.post(f"{url}/api/v1/printers", json=body) as resp:
                    await resp.read()
                    if resp.status == 201:
                        latencies.append(time.perf_counter() - started)
                    else:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return len(latencies) / elapsed, p50, p99, failures


WRK_SCRIPT = """
local counter = 0
local prefix = "w"
init = function(args) prefix = args[1] or "w" end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  return wrk.format(nil, "/api/v1/printers", nil,
    '{"id":"' .. prefix .. '-' .. counter .. '","company":"Bench","model":"B1"}')
end
"""


def wrk_load(
    url: str, concurrency: int, seconds: float, script: Path
) -> tuple[float, float, float, int]:
    """The same measurement with wrk: distinct ids from a per-run prefix."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, int(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            uuid.uuid4().hex[:8],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, ms("50%"), ms("99%"), int(bad.group(1)) if bad else 0


async def failover_round(cluster: ProcessCluster, round_no: int) -> float:
    leader = cluster.wait_for_leader(timeout=20)
    survivors = [n for n in cluster.alive() if n is not leader]
    first_ok: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def attempt(i: int, killed_at: float) -> None:
            node = survivors[i % len(survivors)]
            body = {"id": f"fo-{round_no}-{i}", "company": "Fail", "model": "Over"}
            try:
                async with session.post(f"{node.url}/api/v1/printers", json=body) as resp:
                    await resp.read()
                    if resp.status == 201 and not first_ok.done():
                        first_ok.set_result(time.perf_counter() - killed_at)
            except (aiohttp.ClientError, TimeoutError):
                pass

        leader.kill()
        killed_at = time.perf_counter()
        tasks = []
        for i in itertools.count():
            if first_ok.done() or time.perf_counter() - killed_at > 10:
                break
            tasks.append(asyncio.create_task(attempt(i, killed_at)))
            await asyncio.sleep(0.01)  # the client's 10 ms re-send pacing
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    leader.start()
    wait_until(lambda: leader.status()["role"] == "follower", 20, "killed node to rejoin")
    if not first_ok.done():
        raise RuntimeError("no write succeeded within 10 s of the kill")
    return first_ok.result()


async def run(args: argparse.Namespace) -> None:
    cluster: ProcessCluster | None = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.target:
            url = args.target.rstrip("/")
        else:
            cluster = ProcessCluster(Path(tmp), 3)
            cluster.start()
            url = cluster.wait_for_leader(timeout=20).url
        try:
            await load(url, 16, 2.0)  # warm-up
            script = Path(tmp) / "post.lua"
            script.write_text(WRK_SCRIPT)
            if args.client == "wrk" and shutil.which("wrk") is None:
                raise SystemExit("wrk is not installed (apt-get install wrk)")
            print(f"client {args.client}")
            print("concurrency  writes/s  p50 ms  p99 ms  non-2xx")
            for c in (1, 8, 64):
                if args.client == "wrk":
                    rate, p50, p99, failures = wrk_load(url, c, args.seconds, script)
                else:
                    rate, p50, p99, failures = await load(url, c, args.seconds)
                print(f"{c:11d}  {rate:8.0f}  {p50:6.2f}  {p99:6.2f}  {failures}")
            if cluster is not None and args.rounds:
                times = sorted(
                    [await failover_round(cluster, i) * 1000 for i in range(args.rounds)]
                )
                print(
                    f"failover over {len(times)} rounds: median {statistics.median(times):.0f} ms, "
                    f"min {times[0]:.0f} ms, max {times[-1]:.0f} ms "
                    f"({', '.join(f'{t:.0f}' for t in times)})"
                )
        finally:
            if cluster is not None:
                cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--rounds", type=int, default=10, help="failover rounds")
    parser.add_argument("--target", help="an existing node's URL (leader); skips failover")
    parser.add_argument("--client", choices=("aiohttp", "wrk"), default="aiohttp")
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
