"""A chaos soak: ``python -m tests.chaos --seed N --duration S``.

Prints the summary (operations, acknowledged, indeterminate, faults by kind, each check,
longest unavailability) and, when a check fails, the command that replays the seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runner import RunConfig, recheck, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--recheck", type=Path, metavar="DIR", help="check the history a run kept in DIR again"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults")
    parser.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--snapshot-threshold", type=int, default=150)
    parser.add_argument(
        "--membership", action="store_true", help="add membership changes to the faults"
    )
    parser.add_argument("--workdir", type=Path, help="keep data, logs and history here")
    args = parser.parse_args(argv)
    if args.recheck is not None:
        results = recheck(args.recheck)
        print("\n".join(r.line() for r in results))
        return 0 if all(r.ok for r in results) else 1
    if args.seed is None:
        parser.error("--seed is required")
    if not 1 <= args.duration <= 24 * 3600 or not 1 <= args.clients <= 64:
        parser.error("--duration must be in [1, 86400] s and --clients in [1, 64]")
    config = RunConfig(
        seed=args.seed,
        duration=args.duration,
        nodes=args.nodes,
        clients=args.clients,
        snapshot_threshold=args.snapshot_threshold,
        membership=args.membership,
        workdir=args.workdir,
    )
    report = run(config)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
