"""What snapshots cost a write's tail, with and without staggered snapshot points.

Starts a 3-node cluster per mode, warms it, then runs wrk at ``--concurrency`` against the
leader (``POST /api/v1/printers``, a new id per request) for ``--seconds``, ``--rounds``
times, the modes alternating round by round. Modes:

- ``none``: no snapshots (``snapshot_threshold`` out of reach): the baseline;
- ``together``: a snapshot every ``--threshold`` entries on every node at the same index
  (``snapshot_stagger = false``, as before);
- ``staggered``: the same threshold, each node at its own points (the default).

    .venv/bin/python -m benchmarks.stagger_bench [--threshold 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.support.procs import ProcessCluster

from benchmarks.http_bench import wrk_load
from benchmarks.vs_etcd import LIMITS, RAFT3D_LUA


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threshold", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = {
        "none": {"snapshot_threshold": 1_000_000_000},
        "together": {"snapshot_threshold": args.threshold, "snapshot_stagger": False},
        "staggered": {"snapshot_threshold": args.threshold, "snapshot_stagger": True},
    }
    results: dict[str, list[tuple[float, float, float, int]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "raft3d.lua"
        lua.write_text(RAFT3D_LUA)
        for round_no in range(args.rounds):
            for mode, raft in modes.items():
                root = Path(tmp) / f"{mode}-{round_no}"
                root.mkdir()
                cluster = ProcessCluster(root, 3, raft=raft, tables={"limits": LIMITS})
                try:
                    cluster.start()
                    leader = cluster.wait_for_leader(timeout=30)
                    wrk_load(leader.url, 16, 2, lua)  # warm-up
                    results[mode].append(wrk_load(leader.url, args.concurrency, args.seconds, lua))
                finally:
                    cluster.stop()
            print(f"round {round_no + 1}/{args.rounds} done", flush=True)
    print(
        f"c={args.concurrency}, {args.rounds} rounds x {args.seconds:g} s, medians; "
        f"threshold {args.threshold}"
    )
    for mode, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        every = " ".join(f"{r[2]:.1f}" for r in runs)
        bad = sum(r[3] for r in runs)
        print(
            f"  {mode:<10} {rate:7.0f}/s p50 {p50:6.2f} p99 {p99:6.1f} ms "
            f"(p99 per round: {every}) non-2xx {bad}"
        )


if __name__ == "__main__":
    main()
