"""Consensus benchmark on a real 3-process cluster of key-value nodes (fsync on).

Prints proposals/s and commit latency at 1, 8 and 64 concurrent proposers (run inside the
leader process, so the figure is the consensus stack's, not an HTTP client's), failover
time over several rounds (SIGKILL of the leader -> first committed proposal through a
survivor, re-sent every 10 ms), and leader changes during a steady load.

    .venv/bin/python -m benchmarks.consensus_bench [--rounds 10] [--steady 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

KV_COMMAND = [sys.executable, "-m", "tests.support.kvnode"]


def load(leader: NodeProcess, n: int, c: int) -> dict[str, float]:
    code, body, _ = http_json("POST", f"{leader.url}/load?n={n}&c={c}&size=100", timeout=300)
    assert code == 200, body
    return body  # type: ignore[no-any-return]


def failover_round(cluster: ProcessCluster, round_no: int) -> float:
    leader = cluster.wait_for_leader(timeout=20)
    survivors = [n for n in cluster.alive() if n is not leader]
    done = threading.Event()
    result: list[float] = []
    killed_at = time.monotonic()

    def client(node: NodeProcess) -> None:
        i = 0
        while not done.is_set() and time.monotonic() - killed_at < 10:
            i += 1
            sent = time.monotonic()
            try:
                code, _, _ = http_json(
                    "POST",
                    f"{node.url}/propose",
                    {"key": f"fo-{round_no}-{node.node_id}-{i}", "value": "v", "timeout": 2},
                    3,
                )
            except OSError:
                code = 0
            if code == 200 and not done.is_set():
                result.append(time.monotonic() - killed_at)
                done.set()
            time.sleep(max(0.0, 0.01 - (time.monotonic() - sent)))  # re-send pacing

    threads = [threading.Thread(target=client, args=(n,)) for n in survivors]
    leader.kill()
    killed_at = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leader.start()
    wait_until(lambda: leader.status()["role"] == "follower", 20, "killed node to rejoin")
    if not result:
        raise RuntimeError("no proposal committed within 10 s of the kill")
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of steady load")
    parser.add_argument("--n", type=int, default=20000, help="proposals per throughput run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ProcessCluster(Path(tmp), 3, KV_COMMAND) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader(timeout=20)
        load(leader, 2000, 64)  # warm-up
        print("proposers  proposals/s  p50 ms  p99 ms  errors")
        for c in (1, 8, 64):
            r = load(leader, args.n if c > 1 else max(2000, args.n // 10), c)
            rate, p50, p99 = r["ops_per_s"], r["p50_ms"], r["p99_ms"]
            print(f"{c:9d}  {rate:11.0f}  {p50:6.2f}  {p99:6.2f}  {r['errors']}")

        if args.rounds:
            times = [failover_round(cluster, i) for i in range(args.rounds)]
            ms = sorted(t * 1000 for t in times)
            print(
                f"failover over {len(ms)} rounds: median {statistics.median(ms):.0f} ms, "
                f"min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms  ({', '.join(f'{t:.0f}' for t in ms)})"
            )

        if args.steady > 0:
            leader = cluster.wait_for_leader(timeout=20)
            term = leader.status()["term"]
            deadline = time.monotonic() + args.steady
            total = 0
            while time.monotonic() < deadline:
                total += int(load(leader, 5000, 64)["ok"])
            terms = {n.node_id: n.status()["term"] for n in cluster.alive()}
            leaders = {n.status()["leader_id"] for n in cluster.alive()}
            changed = any(t != term for t in terms.values()) or leaders != {leader.node_id}
            print(
                f"steady load {args.steady:.0f} s: {total} proposals, "
                f"leader changes: {'YES' if changed else 'none'} (term {term} -> {terms})"
            )


if __name__ == "__main__":
    main()
