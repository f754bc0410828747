"""Two versions of Raft3D side by side: this checkout and another one (``--code DIR``).

Both run as 3-node clusters at the same time; wrk writes at c=64 (``--concurrency``) to
each leader and then to a follower of each (not with ``--leader-only``), the two versions
alternating round by round so that the shared machine's load falls on both alike. Prints,
per version and target, the median writes/s, p99 and server CPU per write (user + system
of the three nodes, from /proc).

    git archive main | tar -x -C /tmp/old
    .venv/bin/python -m benchmarks.ab_bench --code /tmp/old [--rounds 4] [--seconds 5]
    .venv/bin/python -m benchmarks.ab_bench --code /tmp/old --concurrency 1 --leader-only
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.support.procs import ProcessCluster

from benchmarks.http_bench import wrk_load
from benchmarks.vs_etcd import RAFT3D_LUA, cpu_seconds

Row = dict[str, tuple[float, float, float]]  # target -> (writes/s, p99 ms, CPU ms/write)


def measure(cluster: ProcessCluster, lua: Path, args: argparse.Namespace) -> Row:
    seconds = args.seconds
    leader = cluster.wait_for_leader(timeout=30)
    follower = next(n for n in cluster.alive() if n is not leader)
    pids = [n.proc.pid for n in cluster.alive() if n.proc is not None]
    row: Row = {}
    targets = [("leader", leader.url)] + ([] if args.leader_only else [("follower", follower.url)])
    for target, url in targets:
        before = cpu_seconds(pids)
        rate, _, p99, _ = wrk_load(url, args.concurrency, seconds, lua)
        cpu = cpu_seconds(pids) - before
        row[target] = (rate, p99, cpu / max(1.0, rate * seconds) * 1e3)
    return row


def run(args: argparse.Namespace) -> None:
    versions = {"other": {"PYTHONPATH": str(Path(args.code).resolve() / "src")}, "this": {}}
    results: dict[str, list[Row]] = {name: [] for name in versions}
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "raft3d.lua"
        lua.write_text(RAFT3D_LUA)
        clusters = {}
        for name, env in versions.items():
            (Path(tmp) / name).mkdir()
            clusters[name] = ProcessCluster(Path(tmp) / name, 3, env=env)
        try:
            for cluster in clusters.values():
                cluster.start()
            for cluster in clusters.values():  # warm-up
                wrk_load(cluster.wait_for_leader(timeout=30).url, 16, 2, lua)
            for round_no in range(args.rounds):
                order = list(versions) if round_no % 2 == 0 else list(reversed(versions))
                for name in order:
                    results[name].append(measure(clusters[name], lua, args))
        finally:
            for cluster in clusters.values():
                cluster.stop()
    c = args.concurrency
    print(f"c={c}, {args.rounds} rounds x {args.seconds:g} s, medians ('other': {args.code})")
    for name, rows in results.items():
        for target in rows[0]:
            rate, p99, cpu = (statistics.median(r[target][k] for r in rows) for k in range(3))
            print(f"  {name:<5} to the {target:<8} {rate:7.0f}/s p99 {p99:7.1f} ms {cpu:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", required=True, help="the other checkout (its src/ is run)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--leader-only", action="store_true", help="no row to a follower")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
