"""Does a node leak what its collector froze? RSS and frozen objects under a mixed load.

``raft3d.node.heap`` freezes what survives each full collection; a reference cycle that
becomes garbage after it was frozen is never freed. This runs a 3-node cluster (seeded, like
``stall_bench``, with a farm of ``--objects`` objects) under a bounded mixed load for
``--rounds`` rounds of ``--seconds``: wrk writes at c=32 to the leader, wrk reads at c=16
of one print job on a follower, and a client that opens a new connection for every request
(lists, a missing object, a bad body: errors and connection set-up make cycles). After
each round it prints, per node, the RSS (VmRSS) and ``raft3d_gc_frozen_objects``. A leak
shows as a frozen count and an RSS that keep growing round after round while the state
they hold does not (the load only adds printers: a few hundred bytes each).

    .venv/bin/python -m benchmarks.frozen_bench [--objects 100000] [--rounds 6] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import uvloop
from tests.support.procs import ProcessCluster

from benchmarks.http_bench import WRK_SCRIPT, wrk_load
from benchmarks.stall_bench import SEED_INDEX, farm_snapshot, seed, vm_kb
from benchmarks.vs_etcd import LIMITS

_FROZEN = re.compile(r"^raft3d_gc_frozen_objects ([\d.e+]+)$", re.M)


def frozen_objects(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        match = _FROZEN.search(resp.read().decode())
    assert match, "no raft3d_gc_frozen_objects on /metrics"
    return int(float(match.group(1)))


def wrk_reads(url: str, seconds: float) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{max(1, int(seconds))}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


async def churn(url: str, seconds: float) -> int:
    """A new connection per request: lists, a 404, a 400; returns the requests made."""
    deadline = time.perf_counter() + seconds
    made = 0
    connector = aiohttp.TCPConnector(force_close=True, limit=8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal made
            while time.perf_counter() < deadline:
                for method, path, body in (
                    ("GET", "/api/v1/print_jobs?limit=20", None),
                    ("GET", "/api/v1/printers/no-such-printer", None),
                    ("POST", "/api/v1/printers", b"{not json"),
                    ("GET", "/cluster/status", None),
                ):
                    async with session.request(method, f"{url}{path}", data=body) as resp:
                        await resp.read()
                    made += 1

        await asyncio.gather(*(worker() for _ in range(8)))
    return made


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with ProcessCluster(root, 3, tables={"limits": LIMITS}) as cluster:
            seed(cluster, farm_snapshot(args.objects))
            cluster.start()
            leader = cluster.wait_for_leader(timeout=300)
            cluster.wait_for_applied(SEED_INDEX, timeout=300)
            follower = next(n for n in cluster.alive() if n is not leader)
            script = root / "post.lua"
            script.write_text(WRK_SCRIPT)
            nodes = sorted(cluster.alive(), key=lambda n: n.node_id)
            print(f"farm: {args.objects} objects; leader {leader.node_id}")

            def sample(label: str) -> None:
                cells = []
                for node in nodes:
                    assert node.proc is not None
                    rss = vm_kb(node.proc.pid, "VmRSS") / 1024
                    cells.append(
                        f"{node.node_id} RSS {rss:.0f} MB frozen {frozen_objects(node.url)}"
                    )
                print(f"{label}: " + "; ".join(cells), flush=True)

            sample("before")
            for round_no in range(1, args.rounds + 1):
                writes, reads, churned = await asyncio.gather(
                    asyncio.to_thread(wrk_load, leader.url, 32, args.seconds, script),
                    asyncio.to_thread(
                        wrk_reads, f"{follower.url}/api/v1/print_jobs/j1", args.seconds
                    ),
                    churn(follower.url, args.seconds),
                )
                print(
                    f"round {round_no}: {writes[0]:.0f} writes/s, {reads:.0f} reads/s, "
                    f"{churned} requests on new connections"
                )
                sample(f"after round {round_no}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
