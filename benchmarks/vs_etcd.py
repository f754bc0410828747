"""Raft3D beside etcd, in one run on one machine, driven by the same wrk client shape.

Both systems run as three processes on loopback with fsync on and their default timers:
Raft3D from this checkout (``tests.support.procs.ProcessCluster``), etcd from Debian's
``etcd-server`` package (``apt-get install etcd-server wrk``). wrk sends writes of a
128-byte record with a new key per request (a Lua script numbers them), ``--rounds`` times
``--seconds`` per row, the two systems interleaved round by round so that whatever else the
machine does falls on both. Every figure printed is the median over the rounds.

Rows: to the leader at concurrency 1, 8 and 64; to a follower at 64; the server CPU time per
write at 64 (user + system of the three server processes, from /proc); and the idle CPU of the
three servers together over ``--idle`` seconds with no client. CPU counts each server's child
processes too (Raft3D's HTTP fronts).

``--workers 0,1`` runs one Raft3D cluster per value of ``http.workers`` (HTTP front processes
per node, ``raft3d.front``) in the same run, each compared with the same etcd figures; a
value such as ``1f`` also sets ``http.node_listens = false`` (only the fronts accept).

    .venv/bin/python -m benchmarks.vs_etcd [--seconds 5] [--rounds 3] [--idle 5] [--workers 0,1f]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import ProcessCluster, free_ports, wait_until

from benchmarks.http_bench import wrk_load

RECORD_BYTES = 128
# Every row adds printers: the default quota (100,000) is reached within one quiet run, and a
# refused write (409 quota_exceeded) is answered without a commit, so it would count as a fast
# write. The benchmark's clusters get room for all of them.
LIMITS = {"max_printers": 100_000_000}
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Raft3D: a printer whose JSON body is RECORD_BYTES long, with a new id per request.
RAFT3D_LUA = """
local counter = 0
local prefix = "w"
init = function(args) prefix = args[1] or "w" end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local id = prefix .. "-" .. counter
  local body = '{"id":"' .. id .. '","company":"Bench","model":"'
  body = body .. string.rep("m", @RECORD_BYTES@ - #body - 2) .. '"}'
  return wrk.format(nil, "/api/v1/printers", nil, body)
end
""".replace("@RECORD_BYTES@", str(RECORD_BYTES))

# etcd: PUT through its JSON gateway; keys and values are base64 in that API.
ETCD_LUA = """
local counter = 0
local prefix = "w"
local b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(data)
  return ((data:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d?%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end
init = function(args) prefix = args[1] or "w" end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local value = "@VALUE@"
request = function()
  counter = counter + 1
  local body = '{"key":"' .. b64(prefix .. "-" .. counter) .. '","value":"' .. value .. '"}'
  return wrk.format(nil, "/v3/kv/put", nil, body)
end
""".replace("@VALUE@", base64.b64encode(b"v" * RECORD_BYTES).decode())


def with_children(pids: list[int]) -> list[int]:
    """``pids`` and their children (a Raft3D node's HTTP fronts)."""
    found = list(pids)
    for pid in pids:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(c) for c in children)
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in with_children(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        total += int(fields[11]) + int(fields[12])  # utime, stime (after the comm field)
    return total / CLK_TCK


@dataclass
class System:
    name: str
    leader_url: Callable[[], str]
    follower_url: Callable[[], str]
    pids: Callable[[], list[int]]
    script: Path


class EtcdCluster:
    """Three etcd members on free loopback ports with etcd's default settings."""

    def __init__(self, root: Path) -> None:
        ports = free_ports(6)
        self.client = [f"http://127.0.0.1:{ports[2 * i]}" for i in range(3)]
        peer = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(3)]
        initial = ",".join(f"e{i}={peer[i]}" for i in range(3))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.commands = [
            [
                "etcd",
                "--name", f"e{i}",
                "--data-dir", str(root / f"e{i}"),
                "--listen-client-urls", self.client[i],
                "--advertise-client-urls", self.client[i],
                "--listen-peer-urls", peer[i],
                "--initial-advertise-peer-urls", peer[i],
                "--initial-cluster", initial,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", "raft3d-bench",
            ]
            for i in range(3)
        ]  # fmt: skip
        self.root = root

    def start(self) -> None:
        for i, cmd in enumerate(self.commands):
            log = open(self.root / f"e{i}.log", "ab")  # noqa: SIM115 - handed to the child
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    def _status(self, url: str) -> dict[str, object]:
        req = urllib.request.Request(f"{url}/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=2) as resp:
            body: dict[str, object] = json.loads(resp.read())
            return body

    def leader_index(self) -> int:
        def find() -> int | None:
            for i, url in enumerate(self.client):
                s = self._status(url)
                header = s["header"]
                assert isinstance(header, dict)
                if s.get("leader") == header.get("member_id"):
                    return i + 1  # +1: a truthy value for wait_until
            return None

        return wait_until(find, 30, "an etcd leader") - 1


def row_runs(system: System, concurrency: int, to_leader: bool, seconds: float) -> dict[str, float]:
    url = system.leader_url() if to_leader else system.follower_url()
    before = cpu_seconds(system.pids())
    rate, p50, p99, failures = wrk_load(url, concurrency, seconds, system.script)
    cpu = cpu_seconds(system.pids()) - before
    writes = max(1.0, rate * max(1, int(seconds)))
    return {"rate": rate, "p50": p50, "p99": p99, "errors": failures, "cpu_ms": cpu / writes * 1e3}


def idle_cores(system: System, seconds: float) -> float:
    before = cpu_seconds(system.pids())
    time.sleep(seconds)  # measuring an idle interval, not waiting for a condition
    return (cpu_seconds(system.pids()) - before) / seconds


ROWS = [("to the leader, c=1", 1, True), ("to the leader, c=8", 8, True),
        ("to the leader, c=64", 64, True), ("to a follower, c=64", 64, False)]  # fmt: skip


def raft3d_system(name: str, cluster: ProcessCluster, script: Path) -> System:
    def leader() -> str:
        return cluster.wait_for_leader(timeout=20).url

    def follower() -> str:
        chosen = cluster.wait_for_leader(timeout=20)
        return next(n.url for n in cluster.alive() if n is not chosen)

    def pids() -> list[int]:
        return [n.proc.pid for n in cluster.alive() if n.proc is not None]

    return System(name, leader, follower, pids, script)


def run(args: argparse.Namespace) -> None:
    for tool in ("etcd", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install etcd-server wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clusters = {}
        for workers, fronts_only in args.workers:
            name = "raft3d" if workers == 0 else f"raft3d w={workers}"
            http: dict[str, object] = {"workers": workers}
            if fronts_only:
                http["node_listens"] = False
                name += " f/o"
            where = root / name.replace(" ", "-").replace("/", "")
            where.mkdir()
            clusters[name] = ProcessCluster(where, 3, tables={"http": http, "limits": LIMITS})
        etcd = EtcdCluster(root)
        (root / "raft3d.lua").write_text(RAFT3D_LUA)
        (root / "etcd.lua").write_text(ETCD_LUA)
        systems = [
            *(raft3d_system(name, c, root / "raft3d.lua") for name, c in clusters.items()),
            System(
                "etcd",
                lambda: etcd.client[etcd.leader_index()],
                lambda: etcd.client[(etcd.leader_index() + 1) % 3],
                lambda: [p.pid for p in etcd.procs],
                root / "etcd.lua",
            ),
        ]
        try:
            for cluster in clusters.values():
                cluster.start()
            etcd.start()
            for s in systems:  # warm-up, and both clusters settled
                wrk_load(s.leader_url(), 16, 2, s.script)
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            idle: dict[str, list[float]] = {}
            for round_no in range(args.rounds):
                for s in systems if round_no % 2 == 0 else reversed(systems):
                    for label, c, to_leader in ROWS:
                        results.setdefault((s.name, label), []).append(
                            row_runs(s, c, to_leader, args.seconds)
                        )
                    idle.setdefault(s.name, []).append(idle_cores(s, args.idle))
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
            print_table(results, idle, args, list(clusters))
        finally:
            for cluster in clusters.values():
                cluster.stop()
            etcd.stop()


def med(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def print_table(
    results: dict[tuple[str, str], list[dict[str, float]]],
    idle: dict[str, list[float]],
    args: argparse.Namespace,
    names: list[str],
) -> None:
    print(
        f"{args.rounds} rounds x {args.seconds:g} s per row, medians; "
        f"{RECORD_BYTES}-byte records, wrk -t1, fsync on, 3 nodes each"
    )

    def cell(runs: list[dict[str, float]]) -> str:
        return f"{med(runs, 'rate'):7.0f}/s p50 {med(runs, 'p50'):5.2f} p99 {med(runs, 'p99'):6.1f}"

    print(f"{'row':<24} {'system':<12} {'raft3d':>28} {'etcd':>28} {'ratio':>6}")
    for label, _, _ in ROWS:
        e = results[("etcd", label)]
        for name in names:
            r = results[(name, label)]
            ratio = med(r, "rate") / med(e, "rate")
            print(f"{label:<24} {name:<12} {cell(r):>28} {cell(e):>28} {ratio:6.2f}")
    label = "to the leader, c=64"
    e_cpu = med(results[("etcd", label)], "cpu_ms")
    e_idle = statistics.median(idle["etcd"])
    for name in names:
        r_cpu = med(results[(name, label)], "cpu_ms")
        print(
            f"{'server CPU/write, c=64':<24} {name:<12} {r_cpu:25.3f} ms {e_cpu:25.3f} ms "
            f"{r_cpu / e_cpu:6.2f}"
        )
    for name in names:
        r_idle = statistics.median(idle[name])
        print(
            f"{'idle CPU, 3 nodes':<24} {name:<12} {r_idle:22.4f} cores {e_idle:22.4f} cores "
            f"{r_idle / max(e_idle, 1e-6):6.2f}"
        )
    errors = {
        k: sum(r["errors"] for r in v) for k, v in results.items() if any(r["errors"] for r in v)
    }
    if errors:
        print(f"non-2xx answers (those rows do not compare): {errors}")


def _workers(text: str) -> list[tuple[int, bool]]:
    """``0,1,1f``: (workers, only the fronts accept) per Raft3D cluster."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        fronts_only = part.endswith("f")
        digits = part.removesuffix("f")
        if not digits.isdigit() or not 0 <= int(digits) <= 64 or (fronts_only and digits == "0"):
            raise argparse.ArgumentTypeError(f"{part!r}: 0..64, optionally with f (1f, 2f)")
        values.append((int(digits), fronts_only))
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError("distinct values, comma-separated")
    return values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="idle CPU sample, seconds")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=[(0, False)],
        help="http.workers of the Raft3D clusters to run, one cluster each, e.g. 0,1,1f "
        "(f: http.node_listens = false, only the fronts accept: 'f/o' in the table)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
