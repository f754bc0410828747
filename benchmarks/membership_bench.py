"""Membership benchmark (issue 7, "Performance"): leadership transfer, a rolling restart under
writes, and a node joining a cluster with a big state. Real ``raft3d serve`` processes on
loopback, fsync on, default timers.

- **transfer**: ``--transfers`` leadership transfers (``POST /cluster/leader`` to the leader,
  no target: the most caught-up voter). Each is timed from sending the POST to the first
  write acknowledged by the new leader (a client that re-sends every 5 ms, with the same
  ``Idempotency-Key``). Median and p90; the POST's own latency beside it.
- **rolling**: a 3-node rolling restart under ``--writers`` clients writing continuously (each
  write retried with its ``Idempotency-Key`` until acknowledged). Each node in turn: if it
  leads, leadership is transferred away first; it is taken out of the clients' node list (as
  a load balancer drains it), stopped with SIGTERM, started again, and put back once it has
  caught up (``--no-drain``: the clients keep sending to it, and count the refused
  connections). Reported: the share of write attempts that failed (and were retried), and that
  every acknowledged write is on every node at the end.
- **join**: the cluster's state is grown to ``--state-mb`` MB (print jobs with long file
  paths, through the API; the leader's snapshot file size is reported), then a fourth node
  starts with ``raft3d serve --join URL``: seconds from its start to being a voter in
  ``/cluster/members`` (it catches up by InstallSnapshot).

    .venv/bin/python -m benchmarks.membership_bench [--transfers 20]
        [--writers 4] [--no-drain] [--state-mb 100] [--only transfer,rolling,join]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.membership import (
    Writer,
    caught_up,
    printer_ids,
    suffrages,
    transfer_leadership,
)
from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

API = "/api/v1"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def first_write(node: NodeProcess, key: str, deadline_s: float = 10.0) -> None:
    """Re-send one write to ``node`` every 5 ms until it is acknowledged."""
    body = {"id": key, "company": "Prusa", "model": "MK4"}
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            code, _, _ = http_json(
                "POST",
                f"{node.url}{API}/printers",
                body,
                timeout=2.0,
                headers={"Idempotency-Key": key},
            )
            if code == 201:
                return
        except (OSError, ValueError, http.client.HTTPException):
            pass  # the node is not serving yet: re-send
        time.sleep(0.005)  # the client's re-send interval
    raise RuntimeError(f"no write acknowledged by {node.node_id} within {deadline_s} s")


def bench_transfer(root: Path, transfers: int) -> str:
    (root / "transfer").mkdir()
    with ProcessCluster(root / "transfer", 3) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader(timeout=20)
        first_write(leader, "warm-up")
        totals, posts = [], []
        for i in range(transfers):
            leader = cluster.wait_for_leader(timeout=20)
            start = time.perf_counter()
            code, reply = transfer_leadership(leader)
            posted = time.perf_counter()
            if code != 200:
                raise RuntimeError(f"transfer {i}: {code} {reply!r}")
            first_write(cluster.nodes[reply["leader_id"]], f"t{i}")
            totals.append((time.perf_counter() - start) * 1000)
            posts.append((posted - start) * 1000)
        return (
            f"leadership transfer over {transfers} transfers: median "
            f"{statistics.median(totals):.0f} ms, p90 {percentile(totals, 0.9):.0f} ms, "
            f"max {max(totals):.0f} ms (POST /cluster/leader alone: median "
            f"{statistics.median(posts):.0f} ms, p90 {percentile(posts, 0.9):.0f} ms)"
        )


def bench_rolling(root: Path, writers: int, drain: bool) -> str:
    (root / "rolling").mkdir()
    with ProcessCluster(root / "rolling", 3) as cluster:
        cluster.start()
        cluster.wait_for_leader(timeout=20)
        in_service = set(cluster.nodes)

        def targets() -> list[str]:
            return [n.url for nid, n in cluster.nodes.items() if nid in in_service]

        clients = [Writer(targets, prefix=f"c{i}-") for i in range(writers)]
        for client in clients:
            client.__enter__()
        try:
            clients[0].wait_for_more(200)
            started = time.monotonic()
            for node in cluster.nodes.values():
                leader = cluster.wait_for_leader(timeout=20)
                if drain:
                    in_service.discard(node.node_id)
                if node is leader:
                    code, reply = transfer_leadership(node)
                    if code != 200:
                        raise RuntimeError(f"transfer: {code} {reply!r}")
                if node.terminate() != 0:
                    raise RuntimeError(f"{node.node_id} did not stop cleanly")
                node.start()
                wait_until(lambda n=node: n.status()["role"] == "follower", 30, "rejoin")  # type: ignore[misc]
                caught_up(list(cluster.nodes.values()))
                in_service.add(node.node_id)
                clients[0].wait_for_more(100)
            elapsed = time.monotonic() - started
        finally:
            stats = [client.stop() for client in clients]
        caught_up(list(cluster.nodes.values()))
        acked = {pid for s in stats for pid in s.acked}
        missing = {nid: len(acked - printer_ids(n)) for nid, n in cluster.nodes.items()}
        attempts = sum(s.attempts for s in stats)
        failed = sum(s.failed_attempts for s in stats)
        retried = sum(s.retried_writes for s in stats)
        lost = sum(len(s.lost) + len(s.refused) for s in stats)
        return (
            f"rolling restart of 3 nodes with {writers} writers, "
            f"{'draining each node from the clients first' if drain else 'no draining'} "
            f"({elapsed:.1f} s): "
            f"{len(acked)} writes acknowledged, {attempts} attempts, {failed} failed "
            f"({100.0 * failed / max(attempts, 1):.2f} %), {retried} writes needed a retry, "
            f"{lost} never acknowledged; acknowledged writes missing per node: {missing}"
        )


async def write_jobs(url: str, first: int, count: int, concurrency: int = 48) -> None:
    """Print jobs ``first`` .. ``first + count - 1``, with 1000-character file paths (the
    printer and roll they use are created with the first batch)."""
    async with aiohttp.ClientSession() as session:

        async def post(path: str, body: dict[str, Any]) -> None:
            for _ in range(100):
                try:
                    async with session.post(f"{url}{API}{path}", json=body) as resp:
                        if resp.status in (201, 409):
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)  # retry pacing
            raise RuntimeError(f"could not create {body['id']}")

        if first == 0:
            await post("/printers", {"id": "big-p", "company": "Prusa", "model": "XL"})
            roll = {"id": "big-f", "type": "PLA", "color": "red"}
            await post("/filaments", {**roll, "total_weight_in_grams": 10_000_000})
        queue = iter(range(first, first + count))

        async def worker() -> None:
            for n in queue:
                await post(
                    "/print_jobs",
                    {
                        "id": f"job-{n:08d}",
                        "printer_id": "big-p",
                        "filament_id": "big-f",
                        "filepath": f"prints/{n:08d}/" + "x" * 1000 + ".gcode",
                        "print_weight_in_grams": 1,
                    },
                )

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def grow_state(leader: NodeProcess, megabytes: int) -> tuple[int, int]:
    """Jobs written through ``leader`` until its snapshot is at least ``megabytes`` MB (a
    snapshot is asked for after each batch; the batches are sized by the bytes per job seen
    so far). Returns (jobs, snapshot bytes)."""
    target = megabytes * 1_000_000
    jobs, size = 0, 0
    while size < target:
        per_job = size / jobs if jobs else 1_250.0
        batch = int((target - size) / per_job * 1.02) + 100
        asyncio.run(write_jobs(leader.url, jobs, batch))
        jobs += batch
        code, body, _ = http_json("POST", f"{leader.url}/cluster/snapshots", {}, timeout=300)
        if code != 201 or not isinstance(body, dict):
            raise RuntimeError(f"snapshot request: {code} {body!r}")
        size = int(body["size"])
    return jobs, size


def bench_join(root: Path, megabytes: int) -> str:
    # No entries kept after a snapshot: the joiner can only catch up by InstallSnapshot.
    raft = {"snapshot_threshold": 5_000, "snapshot_log_ratio": 0.0, "snapshot_trailing_entries": 0}
    (root / "join").mkdir()
    with ProcessCluster(root / "join", 3, raft=raft) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader(timeout=20)
        t0 = time.monotonic()
        jobs, size = grow_state(leader, megabytes)
        grown = time.monotonic() - t0
        leader = cluster.wait_for_leader(timeout=20)
        joiner = cluster.add_node("n4", [leader.url])
        start = time.monotonic()
        joiner.start()
        wait_until(
            lambda: suffrages(leader).get("n4") == "voter", 300, "n4 to be a voter", interval=0.05
        )
        voter_s = time.monotonic() - start
        log = joiner.log_path.read_text(errors="replace")
        how = "by InstallSnapshot" if "snapshot installed" in log else "from log entries"
        return (
            f"join with a {size / 1e6:.0f} MB snapshot ({jobs} jobs written in {grown:.0f} s): "
            f"n4 a voter {voter_s:.1f} s after its start (caught up {how})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=20)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--state-mb", type=int, default=100)
    parser.add_argument(
        "--no-drain", action="store_true", help="clients keep sending to a node being restarted"
    )
    parser.add_argument("--only", default="transfer,rolling,join")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="raft3d-member-bench-") as tmp:
        root = Path(tmp)
        runs: dict[str, Callable[[], str]] = {
            "transfer": lambda: bench_transfer(root, args.transfers),
            "rolling": lambda: bench_rolling(root, args.writers, drain=not args.no_drain),
            "join": lambda: bench_join(root, args.state_mb),
        }
        for name, run in runs.items():
            if name in parts:
                print(run(), flush=True)
                print(f"  load average now: {os.getloadavg()[0]:.2f}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
