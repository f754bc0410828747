"""Big-state benchmark: does a 3-node cluster holding a large farm stay responsive while it
snapshots under a steady write load? (issue 8, "Performance").

Every node's data directory is seeded with the same snapshot of a farm of ``--objects``
objects (1% printers, 10% filament rolls, the rest print jobs), as if installed from
a leader; then the cluster runs with a snapshot every ``--threshold`` entries
(``snapshot_log_ratio = 0``) while wrk (``apt-get install wrk``) sends POST /api/v1/printers
at ``--concurrency`` for ``--seconds``. Measured:

- leader changes: terms and leaders seen by polling every node's /cluster/status;
- write latency p50/p99 and throughput (wrk);
- event-loop lag, from inside: each node's ``raft3d_event_loop_lag_seconds`` histogram (a
  timer every 50 ms, how late it ran), read before and after the load; the worst lag is the
  smallest bucket bound that holds every sample of the load window;
- and from outside: the worst /healthz latency seen by a prober that asks every node every
  20 ms (it includes queueing behind the load's requests and the prober's own scheduling);
- the snapshot log lines' ``capture_ms`` (what the loop paid) and ``total_ms``;
- peak RSS per node (VmHWM) against the snapshot file size;
- each node's CPU time (user and system) during the load, and all of it per write.

    .venv/bin/python -m benchmarks.stall_bench [--objects 1000000] [--seconds 60]
        [--threshold 10000] [--concurrency 64] [--logs DIR]

``--objects 1000`` gives the same load on a tiny farm: the baseline that shows what the
request path alone costs on the machine at that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import uvloop
from tests.support.procs import ProcessCluster

from benchmarks.http_bench import WRK_SCRIPT, wrk_load
from benchmarks.vs_etcd import LIMITS, cpu_seconds
from raft3d.consensus.types import HardState, Snapshot, SnapshotMeta
from raft3d.domain.snapshot import SNAPSHOT_FORMAT
from raft3d.storage import DurableStorage

SEED_INDEX = 1000
SEED_TERM = 1


def farm_snapshot(objects: int) -> bytes:
    """The state machine's snapshot bytes for a farm of ``objects`` objects."""
    # Few printers: the load creates printers, and [limits] max_printers is 100,000.
    printers = max(1, objects // 100)
    filaments = max(1, objects // 10)
    jobs = objects - printers - filaments
    per_roll = -(-jobs // filaments)
    state = {
        "printers": [{"id": f"p{n}", "company": "Prusa", "model": "MK4"} for n in range(printers)],
        "filaments": [
            {
                "id": f"f{n}",
                "type": "PLA",
                "color": "red",
                "total_weight_in_grams": 10 * per_roll,
                "remaining_weight_in_grams": 10 * per_roll,
            }
            for n in range(filaments)
        ],
        "print_jobs": [
            {
                "id": f"j{n}",
                "printer_id": f"p{n % printers}",
                "filament_id": f"f{n % filaments}",
                "filepath": f"prints/{n}.gcode",
                "print_weight_in_grams": 5,
                "status": "Queued",
            }
            for n in range(jobs)
        ],
        "idempotency": [],
    }
    document = {
        "format": SNAPSHOT_FORMAT,
        "last_applied_index": SEED_INDEX,
        "state": state,
        "outcomes": [],
    }
    return msgpack.packb(document, use_bin_type=True)  # type: ignore[no-any-return]


def seed(cluster: ProcessCluster, data: bytes) -> None:
    voters = tuple(sorted(cluster.nodes))
    snapshot = Snapshot(SnapshotMeta(SEED_INDEX, SEED_TERM, voters), data)
    for node in cluster.nodes.values():
        with DurableStorage(node.data_dir) as storage:
            storage.persist(HardState(SEED_TERM, None, SEED_INDEX), [], snapshot)


_LAG_BUCKET = re.compile(r'^raft3d_event_loop_lag_seconds_bucket\{le="([^"]+)"\} ([\d.e+]+)$', re.M)


def lag_buckets(url: str) -> dict[float, float]:
    """The node's loop-lag histogram: cumulative sample count per bucket bound (seconds)."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return {float(le): float(count) for le, count in _LAG_BUCKET.findall(text)}


def lag_summary(before: dict[float, float], after: dict[float, float]) -> str:
    """Samples in the window, how many over 20 ms, and the bound of the worst one."""
    window = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = window.get(float("inf"), 0.0)
    over = total - window.get(0.02, 0.0)
    worst = next((le for le, count in window.items() if count >= total), float("inf"))
    bound = "+Inf" if worst == float("inf") else f"{worst * 1000:g} ms"
    return f"{total:.0f} samples, {over:.0f} over 20 ms, worst <= {bound}"


def vm_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


async def probe(cluster: ProcessCluster, stop: asyncio.Event, seen: dict[str, Any]) -> None:
    """Poll /healthz (every 20 ms) and /cluster/status (every 0.25 s) on every node."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def health(node_id: str, url: str) -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with session.get(f"{url}/healthz") as resp:
                    await resp.read()
                took = time.perf_counter() - started
                seen["health_ms"][node_id] = max(seen["health_ms"][node_id], took * 1000)
                await asyncio.sleep(0.02)

        async def status(node_id: str, url: str) -> None:
            while not stop.is_set():
                async with session.get(f"{url}/cluster/status") as resp:
                    body = await resp.json()
                seen["terms"].add(body["term"])
                if body["leader_id"]:
                    seen["leaders"].add((body["term"], body["leader_id"]))
                await asyncio.sleep(0.25)

        tasks = []
        for node in cluster.nodes.values():
            seen["health_ms"][node.node_id] = 0.0
            tasks.append(asyncio.create_task(health(node.node_id, node.url)))
            tasks.append(asyncio.create_task(status(node.node_id, node.url)))
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    data = farm_snapshot(args.objects)
    print(
        f"seed snapshot: {args.objects} objects, {len(data) / 1e6:.1f} MB "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raft = {"snapshot_threshold": args.threshold, "snapshot_log_ratio": 0.0}
        # Room for every printer the load creates (see vs_etcd.LIMITS).
        tables = {"limits": LIMITS}
        with ProcessCluster(root, 3, raft=raft, tables=tables) as cluster:
            seed(cluster, data)
            del data
            cluster.start()
            leader = cluster.wait_for_leader(timeout=300)
            cluster.wait_for_applied(SEED_INDEX, timeout=300)
            print(
                f"cluster up, leader {leader.node_id} after {time.perf_counter() - started:.0f} s"
            )
            script = root / "post.lua"
            script.write_text(WRK_SCRIPT)
            seen: dict[str, Any] = {"health_ms": {}, "terms": set(), "leaders": set()}
            stop = asyncio.Event()
            prober = asyncio.create_task(probe(cluster, stop, seen))
            await asyncio.sleep(1)
            before = {n.node_id: n.status()["term"] for n in cluster.alive()}
            lags_before = {n.node_id: lag_buckets(n.url) for n in cluster.alive()}
            log_start = {n.node_id: n.log_path.stat().st_size for n in cluster.nodes.values()}
            rss_start = {n.node_id: vm_kb(n.proc.pid, "VmRSS") for n in cluster.alive() if n.proc}
            cpu_start = {n.node_id: cpu_seconds([n.proc.pid]) for n in cluster.alive() if n.proc}
            rate, p50, p99, bad = await asyncio.to_thread(
                wrk_load, leader.url, args.concurrency, args.seconds, script
            )
            cpu = {
                n.node_id: cpu_seconds([n.proc.pid]) - cpu_start[n.node_id]
                for n in cluster.alive()
                if n.proc
            }
            stop.set()
            await prober
            after = {n.node_id: n.status() for n in cluster.alive()}
            lags = {
                n.node_id: lag_summary(lags_before[n.node_id], lag_buckets(n.url))
                for n in cluster.alive()
            }
            rss = {n.node_id: vm_kb(n.proc.pid, "VmHWM") for n in cluster.alive() if n.proc}
            snaps: dict[str, int] = {}
            for node in cluster.alive():
                _, body = await asyncio.to_thread(_get, f"{node.url}/cluster/snapshots")
                snaps[node.node_id] = max(s["size"] for s in body["snapshots"])
            captures, totals = [], []
            holds: dict[str, str] = {}
            pattern = r"capture_ms=([\d.]+) gc_freeze_ms=([\d.]+) total_ms=([\d.]+)"
            for node in cluster.nodes.values():
                text = node.log_path.read_text()
                if args.logs:
                    args.logs.mkdir(parents=True, exist_ok=True)
                    (args.logs / f"{node.node_id}.log").write_text(text)
                held = [
                    (float(m.group(1)), float(m.group(2)))
                    for m in re.finditer(
                        r"held for (\d+) ms .*?used (\d+) ms of CPU",
                        text[log_start[node.node_id] :],
                    )
                ]
                if held:
                    worst_cpu = max(held, key=lambda h: h[1])
                    holds[node.node_id] = (
                        f"{len(held)} loop-held warnings (> 100 ms) during the load; the "
                        "most loop-thread CPU in one: "
                        f"{worst_cpu[1]:.0f} ms of {worst_cpu[0]:.0f} ms held"
                    )
                for m in re.finditer(pattern, text):
                    captures.append(float(m.group(1)) + float(m.group(2)))
                    totals.append(float(m.group(3)))
    print(
        f"load: wrk c={args.concurrency} {args.seconds:.0f} s: {rate:.0f} writes/s, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, non-2xx {bad}"
    )
    writes = rate * args.seconds
    print(
        "CPU during the load (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items()))
        + f"; all nodes {sum(cpu.values()) * 1e3 / max(writes, 1):.3f} ms per write"
    )
    leaderships = sorted(seen["leaders"])
    print(
        f"terms before {before}, after {[s['term'] for s in after.values()]}; "
        f"leaderships seen {leaderships}; leader changes: {len(leaderships) - 1}"
    )
    print(
        "worst /healthz latency per node (ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(seen["health_ms"].items()))
    )
    for node_id in sorted(lags):
        print(f"{node_id}: event-loop lag during the load: {lags[node_id]}")
    for node_id in sorted(holds):
        print(f"{node_id}: {holds[node_id]}")
    if captures:
        print(
            f"snapshots taken: {len(captures)}; loop cost (capture + gc freeze) max "
            f"{max(captures):.2f} ms; "
            f"total_ms median {statistics.median(totals):.0f}, max {max(totals):.0f}"
        )
    for node_id in sorted(rss):
        print(
            f"{node_id}: RSS before the load {rss_start[node_id] / 1024:.0f} MB, "
            f"peak RSS {rss[node_id] / 1024:.0f} MB, largest snapshot "
            f"{snaps[node_id] / 1e6:.1f} MB, ratio {rss[node_id] * 1024 / snaps[node_id]:.1f}"
        )


def _get(url: str) -> tuple[int, Any]:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--threshold", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--logs", type=Path, help="copy the nodes' logs to this directory")
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
