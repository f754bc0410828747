"""What one write costs a node, counted in instructions rather than timed.

On a shared 2-core machine the rate and CPU time of the same code move by 10-15 % from run
to run, so a change that saves 3 % of the request path cannot be seen by timing it. This
runs a 1-node cluster under ``valgrind --tool=callgrind`` (Debian's ``valgrind``), sends
``--few`` and then, in a second run, ``--many`` writes (``POST /api/v1/printers``, one at
a time on one keep-alive connection, 128-byte bodies), and prints the difference in
instructions executed by the node divided by the difference in writes: start-up, election
and shutdown cancel out. Runs of the same code agree to within about 1.5 % (timers
that run by the clock, such as the loop-lag monitor, still count).

The figure is the whole node's work for a write at concurrency 1 (HTTP, validation, the
proposal, its own Ready, the log write, apply, the answer), not a time: it is for telling
two versions apart (``--code DIR`` runs another checkout's ``src/``, as ``ab_bench`` does).

    .venv/bin/python -m benchmarks.request_cost [--few 100] [--many 600] [--code DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from tests.support.procs import ProcessCluster

from benchmarks.vs_etcd import LIMITS, RECORD_BYTES

START_TIMEOUT_S = 180.0  # a node under callgrind starts and elects itself ~50 times slower
STOP_TIMEOUT_S = 180.0


def body(number: int) -> str:
    text = json.dumps({"id": f"w-{number}", "company": "Bench", "model": ""})
    return text.replace('"model": ""', '"model": "' + "m" * (RECORD_BYTES - len(text)) + '"')


def instructions(writes: int, env: dict[str, str]) -> int:
    """Instructions the node executed from start to exit with ``writes`` writes between."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cluster").mkdir()
        out = root / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, "-m", "raft3d", "serve",
        ]  # fmt: skip
        cluster = ProcessCluster(
            root / "cluster", 1, command=command, env=env, tables={"limits": LIMITS}
        )
        cluster.start()
        try:
            node = cluster.wait_for_leader(timeout=START_TIMEOUT_S)
            conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=60)
            for number in range(writes):
                conn.request(
                    "POST", "/api/v1/printers", body(number), {"Content-Type": "application/json"}
                )
                answer = conn.getresponse()
                answer.read()
                if answer.status != 201:
                    raise SystemExit(f"write {number}: HTTP {answer.status}")
            conn.close()
            code = node.terminate(timeout=STOP_TIMEOUT_S)  # callgrind writes its totals at exit
            if code != 0:
                raise SystemExit(f"the node exited with {code}:\n{node.log_tail()}")
        finally:
            cluster.stop()
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise SystemExit(f"no totals in {out}")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--few", type=int, default=100, help="writes in the first run")
    parser.add_argument("--many", type=int, default=600, help="writes in the second run")
    parser.add_argument("--code", help="another checkout whose src/ the node runs")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if args.many <= args.few:
        raise SystemExit("--many must be larger than --few")
    env = {} if args.code is None else {"PYTHONPATH": str(Path(args.code).resolve() / "src")}
    few = instructions(args.few, env)
    many = instructions(args.many, env)
    per_write = (many - few) / (args.many - args.few)
    print(f"{args.few} writes: {few:,} instructions; {args.many} writes: {many:,}")
    print(f"per write: {per_write:,.0f} instructions")


if __name__ == "__main__":
    main()
