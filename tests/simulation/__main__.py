"""Replay one simulation seed: ``python -m tests.simulation --seed 1234 --nodes 5 --steps 300``.

Add ``--trace`` to print every event (sends, deliveries, crashes, partitions, proposals).
"""

from __future__ import annotations

import argparse
import sys
import time

from .checker import InvariantViolation
from .ending import LivenessViolation
from .harness import replay_command, run_seed
from .sim_config import SimConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation", description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--count", type=int, default=1, help="run this many seeds from --seed")
    parser.add_argument("--trace", action="store_true", help="print every simulated event")
    parser.add_argument(
        "--wipes", action="store_true", help="crashed nodes may restart with a wiped disk"
    )
    args = parser.parse_args(argv)
    trace = print if args.trace else None
    failures = 0
    started = time.perf_counter()
    for seed in range(args.seed, args.seed + args.count):
        try:
            cfg = SimConfig.from_seed(seed, args.nodes, args.steps)
            if args.wipes:
                cfg = cfg.with_wipes()
            result = run_seed(seed, args.nodes, args.steps, trace=trace, cfg=cfg)
        except (InvariantViolation, LivenessViolation) as exc:
            failures += 1
            print(f"FAIL seed {seed}: {type(exc).__name__}: {exc}")
            print(f"  replay: {replay_command(seed, args.nodes, args.steps)} --trace")
            continue
        if args.count == 1:
            print(result)
    elapsed = time.perf_counter() - started
    print(f"{args.count - failures}/{args.count} seeds passed in {elapsed:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
