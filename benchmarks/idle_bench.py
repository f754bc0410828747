"""Idle CPU of each node of a real 3-node cluster (default timers, fsync on).

Starts the cluster, waits for a leader, sends ``--writes`` writes so the cluster is warm,
lets it settle for ``--settle`` seconds, then reads every node's user + system CPU time from
/proc/PID/stat before and after ``--seconds`` with no client at all, ``--rounds`` times.
Prints the cores each node used (CPU seconds per second), by role, and the worst node.

    .venv/bin/python -m benchmarks.idle_bench [--seconds 10] [--rounds 3]
    .venv/bin/python -m benchmarks.idle_bench --py-spy /tmp/idle   # also record each node
    .venv/bin/python -m benchmarks.idle_bench --code /tmp/old      # nodes from another checkout
    .venv/bin/python -m benchmarks.idle_bench --heartbeat-ms 100 --election-ms 1000  # timers

With ``--py-spy DIR`` (``pip install py-spy``) each node is sampled during the last round
into ``DIR/<node>-<role>.txt`` (collapsed stacks, idle frames left out).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (after comm)


def pid_of(node: NodeProcess) -> int:
    assert node.proc is not None
    return node.proc.pid


def idle_round(nodes: list[NodeProcess], seconds: float) -> dict[str, float]:
    before = {n.node_id: cpu_seconds(pid_of(n)) for n in nodes}
    started = time.monotonic()
    time.sleep(seconds)  # measuring an idle interval, not waiting for a condition
    elapsed = time.monotonic() - started
    return {n.node_id: (cpu_seconds(pid_of(n)) - before[n.node_id]) / elapsed for n in nodes}


def record(
    nodes: list[NodeProcess], roles: dict[str, str], seconds: float, out: Path, native: bool
) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [py_spy, "record", "--pid", str(pid_of(n)), "--duration", str(int(seconds)),
             "--rate", "200", "--format", "raw", "--output",
             str(out / f"{n.node_id}-{roles[n.node_id]}.txt"), *(["--native"] if native else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in nodes
    ]  # fmt: skip
    for p in procs:
        p.wait(timeout=seconds + 30)


def run(args: argparse.Namespace) -> None:
    env = {"PYTHONPATH": str(Path(args.code).resolve() / "src")} if args.code else {}
    raft = {
        key: value
        for key, value in (
            ("heartbeat_ms", args.heartbeat_ms),
            ("election_timeout_ms", args.election_ms),
        )
        if value
    }
    root = tempfile.TemporaryDirectory()
    with root as tmp, ProcessCluster(Path(tmp), 3, env=env, raft=raft) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader(timeout=30)
        prefix = uuid.uuid4().hex[:8]
        for i in range(args.writes):
            body = {"id": f"{prefix}-{i}", "company": "Bench", "model": "B1"}
            code, _, _ = http_json("POST", f"{leader.url}/api/v1/printers", body)
            assert code == 201, code
        nodes = cluster.alive()
        wait_until(
            lambda: len({n.status()["applied_index"] for n in nodes}) == 1, 30, "all applied"
        )
        time.sleep(args.settle)  # let the cluster go quiet; not synchronisation
        roles = {n.node_id: str(n.status()["role"]) for n in nodes}
        terms = {n.status()["term"] for n in nodes}
        rounds = [idle_round(nodes, args.seconds) for _ in range(args.rounds)]
        if args.py_spy:
            record(nodes, roles, args.seconds, Path(args.py_spy), args.native)
        after = {n.status()["term"] for n in nodes}
        timers = ", ".join(f"{k} {v}" for k, v in raft.items()) or "default timers"
        print(
            f"idle CPU per node ({timers}), {args.rounds} rounds x {args.seconds:g} s, "
            "median (min-max), cores"
        )
        worst = 0.0
        for n in nodes:
            values = [r[n.node_id] for r in rounds]
            median = statistics.median(values)
            worst = max(worst, median)
            print(
                f"  {n.node_id} {roles[n.node_id]:<9} {median:.4f} "
                f"({min(values):.4f}-{max(values):.4f})"
            )
        total = statistics.median(sum(r.values()) for r in rounds)
        print(f"  3 nodes   {total:.4f}; worst node {worst:.4f}")
        print(f"  terms during the run: {sorted(terms)} -> {sorted(after)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--py-spy", default="", help="record each node into this directory")
    parser.add_argument("--native", action="store_true", help="py-spy: C frames too")
    parser.add_argument("--heartbeat-ms", type=int, default=0, help="default: the node's")
    parser.add_argument("--election-ms", type=int, default=0, help="default: the node's")
    parser.add_argument(
        "--code", default="", help="run the nodes from this checkout instead (before/after)"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
