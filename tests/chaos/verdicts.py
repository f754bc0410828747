"""Check results, and the checks that need no replay: invariants of one farm state and the
real-time order of writes placed in the log."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .history import WriteOp

_MAX_EXAMPLES = 5


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        mark = "PASS" if self.ok else "FAIL"
        text = f"{mark}  {self.name}" + (f": {self.detail}" if self.detail else "")
        for problem in self.problems[:_MAX_EXAMPLES]:
            text += f"\n        - {problem}"
        if len(self.problems) > _MAX_EXAMPLES:
            text += f"\n        ... and {len(self.problems) - _MAX_EXAMPLES} more"
        return text


def result(name: str, problems: list[str], detail: str = "") -> CheckResult:
    return CheckResult(name, not problems, detail, problems)


def running(values: Iterable[int], pick: Callable[[int, int], int] = max) -> list[int]:
    out: list[int] = []
    for v in values:
        out.append(v if not out else pick(out[-1], v))
    return out


def real_time_problems(placed: list[tuple[WriteOp, int]]) -> list[str]:
    """W1 answered before W2 was sent: W1's entry must come first in the log."""
    problems: list[str] = []
    done = sorted(placed, key=lambda p: p[0].complete)
    done_times = [op.complete for op, _ in done]
    done_max = running(i for _, i in done)
    for op, index in placed:
        k = bisect.bisect_left(done_times, op.invoke)
        if k and done_max[k - 1] >= index:
            problems.append(
                f"op {op.op_id} applied at {index}, before a write ({done_max[k - 1]}) answered "
                "before it was sent"
            )
    return problems


def filament_problems(state: dict[str, Any], initial: dict[str, int]) -> list[str]:
    problems: list[str] = []
    printers = {p["id"] for p in state["printers"]}
    reserved: dict[str, int] = defaultdict(int)
    done: dict[str, int] = defaultdict(int)
    for job in state["jobs"]:
        if job["printer_id"] not in printers:
            problems.append(f"job {job['id']} on a missing printer")
        if job["status"] in ("Queued", "Running"):
            reserved[job["filament_id"]] += job["print_weight_in_grams"]
        elif job["status"] == "Done":
            done[job["filament_id"]] += job["print_weight_in_grams"]
    filaments = {f["id"]: f for f in state["filaments"]}
    for fid in set(reserved) | set(done):
        if fid not in filaments:
            problems.append(f"jobs on a missing filament {fid}")
    for fid, f in filaments.items():
        remaining, total = f["remaining_weight_in_grams"], f["total_weight_in_grams"]
        if not 0 <= remaining <= total:
            problems.append(f"filament {fid}: remaining {remaining} outside [0, {total}]")
        if reserved[fid] > remaining:
            problems.append(f"filament {fid}: {reserved[fid]} g reserved, {remaining} g left")
        if fid in initial and initial[fid] - done[fid] != remaining:
            problems.append(
                f"filament {fid}: started with {initial[fid]} g, {done[fid]} g printed, "
                f"but {remaining} g remain"
            )
    return problems
