"""Where each node's threads spend a write: on a core, or waiting for one.

Starts a 3-node cluster, warms it, then runs wrk at ``--concurrency`` against the leader
(or a follower) and reads every thread's scheduler statistics (``/proc/PID/task/TID/
schedstat``: nanoseconds on a CPU, nanoseconds runnable but waiting in the run queue,
time slices) before and after ``--seconds`` of the run, ``--rounds`` times. Prints, per
node and thread, the cores it used, the cores' worth of time it waited for one, and its
slices per second; then wrk's own.

A sampling profiler (py-spy) counts a thread that waits in the run queue as busy, at the
line where it lost its core: a thread that writes to a loopback socket wakes the reader,
which may take the writer's core. These figures tell the two apart.

    .venv/bin/python -m benchmarks.thread_cpu [--concurrency 64] [--seconds 5] [--rounds 2]
    .venv/bin/python -m benchmarks.thread_cpu --target follower
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.support.procs import ProcessCluster

from benchmarks.http_bench import wrk_load
from benchmarks.vs_etcd import LIMITS, RAFT3D_LUA

Sample = dict[str, tuple[float, float, int]]  # thread label -> (on CPU s, run queue s, slices)


def threads(pid: int) -> Sample:
    """Scheduler statistics of every thread of ``pid``, labelled ``TID name main|thread``."""
    out: Sample = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            run, wait, slices = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:
            continue  # exited meanwhile
        role = "main" if int(tid) == pid else "thread"  # a node's main thread runs its loop
        out[f"{tid} {comm} {role}"] = (int(run) / 1e9, int(wait) / 1e9, int(slices))
    return out


def rates(before: Sample, after: Sample, seconds: float) -> dict[str, tuple[float, float, float]]:
    out = {}
    for label, (run, wait, slices) in after.items():
        run0, wait0, slices0 = before.get(label, (0.0, 0.0, 0))
        out[label] = (
            (run - run0) / seconds,
            (wait - wait0) / seconds,
            (slices - slices0) / seconds,
        )
    return out


def wrk_pid(started_after: set[int]) -> int | None:
    found = subprocess.run(["pgrep", "-x", "wrk"], capture_output=True, text=True).stdout.split()
    new = [int(p) for p in found if int(p) not in started_after]
    return max(new) if new else None


def measure(cluster: ProcessCluster, lua: Path, args: argparse.Namespace) -> None:
    leader = cluster.wait_for_leader(timeout=30)
    target = leader
    if args.target == "follower":
        target = next(n for n in cluster.alive() if n is not leader)
    nodes = {
        f"{n.node_id} {'leader' if n is leader else 'follower'}": n.proc.pid
        for n in cluster.alive()
        if n.proc is not None
    }
    running = {int(p) for p in subprocess.run(
        ["pgrep", "-x", "wrk"], capture_output=True, text=True
    ).stdout.split()}  # fmt: skip
    result: dict[str, tuple[float, float, float, int]] = {}

    def load() -> None:
        result["wrk"] = wrk_load(target.url, args.concurrency, args.seconds + 2, lua)

    client = threading.Thread(target=load)
    client.start()
    time.sleep(1.0)  # wrk connected and writing: the window starts inside the run
    wrk = wrk_pid(running)
    before = {name: threads(pid) for name, pid in nodes.items()}
    wrk_before = threads(wrk) if wrk is not None else {}
    started = time.monotonic()
    time.sleep(args.seconds)  # the measured window: the load runs meanwhile
    after = {name: threads(pid) for name, pid in nodes.items()}
    wrk_after = threads(wrk) if wrk is not None else {}
    elapsed = time.monotonic() - started
    client.join()
    rate, p50, p99, bad = result["wrk"]
    print(
        f"c={args.concurrency} to the {args.target}: {rate:.0f} writes/s p50 {p50:.2f} ms "
        f"p99 {p99:.1f} ms non-2xx {bad}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  {'node':<14} {'thread':<24} {'on CPU':>7} {'waiting':>8} {'slices/s':>9}")
    for name in nodes:
        for label, (run, wait, slices) in rates(before[name], after[name], elapsed).items():
            if run + wait >= 0.002:
                print(f"  {name:<14} {label:<24} {run:7.3f} {wait:8.3f} {slices:9.0f}")
    for label, (run, wait, slices) in rates(wrk_before, wrk_after, elapsed).items():
        if run + wait >= 0.002:
            print(f"  {'wrk':<14} {label:<24} {run:7.3f} {wait:8.3f} {slices:9.0f}")
    print("  (cores: CPU seconds per second; waiting: runnable, in the run queue)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=64, help="wrk connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target", choices=("leader", "follower"), default="leader")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "raft3d.lua"
        lua.write_text(RAFT3D_LUA)
        (Path(tmp) / "cluster").mkdir()
        cluster = ProcessCluster(Path(tmp) / "cluster", 3, tables={"limits": LIMITS})
        try:
            cluster.start()
            wrk_load(cluster.wait_for_leader(timeout=30).url, 16, 2, lua)  # warm-up
            for _ in range(args.rounds):
                measure(cluster, lua, args)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
