"""Two versions of Raft3D side by side: this checkout and another one (``--code DIR``).

Both run as 3-node clusters at the same time; wrk writes at c=64 (or ``--concurrency``) to
each leader and then to a follower of each, the two versions alternating round by round so
that the shared machine's load falls on both alike. Prints, per version and target, the
median writes/s, p99 and server CPU per write (user + system of the three nodes, from /proc).

    git archive main | tar -x -C /tmp/old
    .venv/bin/python -m benchmarks.ab_bench --code /tmp/old [--rounds 4] [--seconds 5] \
        [--concurrency 64] [--targets leader,follower]
    .venv/bin/python -m benchmarks.ab_bench --code /tmp/old --concurrency 1 --leader-only
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.support.procs import ProcessCluster

from benchmarks.http_bench import wrk_load
from benchmarks.vs_etcd import LIMITS, RAFT3D_LUA, cpu_seconds

Row = dict[str, tuple[float, float, float]]  # target -> (writes/s, p99 ms, CPU ms/write)


def measure(
    cluster: ProcessCluster,
    lua: Path,
    seconds: float,
    concurrency: int = 64,
    targets: tuple[str, ...] = ("leader", "follower"),
) -> Row:
    leader = cluster.wait_for_leader(timeout=30)
    follower = next(n for n in cluster.alive() if n is not leader)
    pids = [n.proc.pid for n in cluster.alive() if n.proc is not None]
    row: Row = {}
    for target, url in (("leader", leader.url), ("follower", follower.url)):
        if target not in targets:
            continue
        before = cpu_seconds(pids)
        rate, _, p99, _ = wrk_load(url, concurrency, seconds, lua)
        cpu = cpu_seconds(pids) - before
        row[target] = (rate, p99, cpu / max(1.0, rate * seconds) * 1e3)
    return row


def run(args: argparse.Namespace) -> None:
    versions = {"other": {"PYTHONPATH": str(Path(args.code).resolve() / "src")}, "this": {}}
    results: dict[str, list[Row]] = {name: [] for name in versions}
    wanted = "leader" if args.leader_only else args.targets
    targets = tuple(t for t in ("leader", "follower") if t in wanted.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "raft3d.lua"
        lua.write_text(RAFT3D_LUA)
        clusters = {}
        for name, env in versions.items():
            (Path(tmp) / name).mkdir()
            clusters[name] = ProcessCluster(Path(tmp) / name, 3, env=env, tables={"limits": LIMITS})
        try:
            for cluster in clusters.values():
                cluster.start()
            for cluster in clusters.values():  # warm-up
                wrk_load(cluster.wait_for_leader(timeout=30).url, 16, 2, lua)
            for round_no in range(args.rounds):
                order = list(versions) if round_no % 2 == 0 else list(reversed(versions))
                for name in order:
                    results[name].append(
                        measure(clusters[name], lua, args.seconds, args.concurrency, targets)
                    )
        finally:
            for cluster in clusters.values():
                cluster.stop()
    print(
        f"c={args.concurrency}, {args.rounds} rounds x {args.seconds:g} s, medians "
        f"('other': {args.code})"
    )
    for name, rows in results.items():
        for target in targets:
            rate, p99, cpu = (statistics.median(r[target][k] for r in rows) for k in range(3))
            print(f"  {name:<5} to the {target:<8} {rate:7.0f}/s p99 {p99:7.1f} ms {cpu:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", required=True, help="the other checkout (its src/ is run)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--targets", default="leader,follower", help="comma-separated: leader, follower"
    )
    parser.add_argument("--leader-only", action="store_true", help="as --targets leader")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
