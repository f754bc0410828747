"""Every check of a chaos run's history; each returns a ``CheckResult``, none stops the others.

The event log the nodes served, merged over all nodes, is replayed through the domain's own
``apply`` (``replay``). That replay is the reference the other checks hold the clients'
observations to: acknowledged writes must be in it, refused ones must not have taken effect,
every read must equal it at the applied index the node reported, and every node's final state
must equal it. Independently of the log, the writes must be linearizable against the farm's
sequential model (``model``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .history import OK, REFUSED, UNKNOWN, History, ReadOp, WriteOp, json_digest, list_digest
from .linearizability import Verdict
from .model import ProjectedRead, check_partition, partitions
from .replay import COMPUTED_FILAMENT_FIELDS, ReplayResult, replay
from .verdicts import CheckResult, filament_problems, real_time_problems, result, running

FINAL_TARGETS = ("printers", "filaments", "jobs")
READ_MARGIN_S = 2.0  # reads this long after a part's last write still take part in its search
REQUEST_SPAN_S = 10.0  # no read lasts longer (the clients' timeout is shorter)
MAX_READS_PER_PART = 200
_FORWARD = {"Running": {"Running", "Done", "Cancelled"}, "Done": {"Done"}}


class Checker:
    def __init__(
        self,
        history: History,
        snapshots: dict[int, bytes] | None = None,
        wgl_budget: int = 2_000_000,
    ) -> None:
        """``snapshots``: archived state machine snapshots by index, to bridge log holes."""
        self.h = history
        self.wgl_budget = wgl_budget
        wanted: dict[int, set[str]] = defaultdict(set)
        for read in self._good_reads():
            assert read.index is not None
            wanted[read.index].add(read.target)
        for state in history.final_states.values():
            wanted[state["applied_index"]].update(FINAL_TARGETS)
        self.parts = partitions(history.writes)
        self.part_reads = self._reads_by_part()
        projections: dict[int, set[tuple[str, str]]] = defaultdict(set)
        for part, reads in self.part_reads.items():
            for read in reads:
                projections[read.index or 0].add((read.target, part))
        self.replay: ReplayResult = replay(
            history.events, wanted, self._extra_fields(), snapshots, projections
        )

    def _reads_by_part(self) -> dict[str, list[ReadOp]]:
        """The linearizable reads that overlap each part's life (and a little after it)."""
        reads = sorted(
            (r for r in self._good_reads() if r.consistency == "linearizable"),
            key=lambda r: r.invoke,
        )
        starts = [r.invoke for r in reads]
        out: dict[str, list[ReadOp]] = {}
        for part, ops in self.parts.items():
            begin = min(op.invoke for op in ops)
            end = max(op.complete for op in ops) + READ_MARGIN_S
            if any(op.outcome == UNKNOWN for op in ops):
                end = max(end, self.h.ended)
            printers = part.startswith("printer:")
            first = bisect.bisect_left(starts, begin - REQUEST_SPAN_S)
            last = bisect.bisect_right(starts, end)
            out[part] = [
                r
                for r in reads[first:last]
                if r.complete >= begin and (r.target == "printers") == printers
            ][:MAX_READS_PER_PART]
        return out

    def _extra_fields(self) -> set[str]:
        found: set[str] = set()
        for state in self.h.final_states.values():
            for item in state.get("filaments", [])[:1]:
                found.update(k for k in item if k in COMPUTED_FILAMENT_FIELDS)
        return found

    def _good_reads(self) -> list[ReadOp]:
        return [r for r in self.h.reads if r.status == 200 and r.index is not None]

    def _outcome(self, op: WriteOp) -> tuple[int | None, dict[str, Any] | None]:
        """Where the op's key was first applied (None inside a bridged hole) and the result."""
        index = self.replay.first_application.get(op.key)
        if index is not None and index in self.replay.outcomes:
            return index, self.replay.outcomes[index]
        return index, self.replay.bridged_keys.get(op.key)

    def run(self) -> list[CheckResult]:
        checks: list[Callable[[], CheckResult]] = [
            self.event_log_complete,
            self.event_logs_agree,
            self.event_outcomes_known,
            self.replay_matches_nodes,
            self.no_acknowledged_write_lost,
            self.refusals_applied_nothing,
            self.idempotency_at_most_once,
            self.filament_invariants,
            self.writes_linearizable,
            self.write_order_respects_real_time,
            self.reads_match_replay,
            self.linearizable_reads_not_stale,
            self.no_server_errors,
        ]
        return [check() for check in checks]

    # -- the event log ---------------------------------------------------------------------

    def event_log_complete(self) -> CheckResult:
        problems = list(self.replay.errors)
        if self.replay.gap is not None:
            problems.append(f"no node reported index {self.replay.gap}: the replay stops there")
        for node, state in sorted(self.h.final_states.items()):
            if state["applied_index"] > self.replay.last_index:
                problems.append(
                    f"{node} applied up to {state['applied_index']}, the replay reaches only "
                    f"{self.replay.last_index}"
                )
        if not self.h.final_states:
            problems.append("no node's final state was captured")
        detail = f"indexes 1..{self.replay.last_index} from {len(self.h.node_events)} nodes"
        if self.replay.bridges:
            detail += f", {len(self.replay.bridges)} holes bridged by snapshots"
        return result("event log collected without gaps", problems, detail)

    def event_logs_agree(self) -> CheckResult:
        problems: list[str] = []
        compared = 0
        indexes: set[int] = set()
        for events in self.h.node_events.values():
            indexes.update(events)
        for index in sorted(indexes):
            seen = [
                (n, evs[index]) for n, evs in sorted(self.h.node_events.items()) if index in evs
            ]
            if len(seen) < 2:
                continue
            compared += 1
            first_node, first = seen[0]
            for node, ev in seen[1:]:
                if ev.core != first.core:
                    problems.append(
                        f"index {index}: {node} and {first_node} hold different entries"
                    )
                elif None not in (ev.outcome, first.outcome) and ev.outcome != first.outcome:
                    problems.append(f"index {index}: {node} and {first_node} report other outcomes")
        return result("event logs identical across nodes", problems, f"{compared} shared indexes")

    def event_outcomes_known(self) -> CheckResult:
        problems = [
            f"{node} reported outcome null for {self.h.events[i]['type']} at index {i}"
            for node, evs in sorted(self.h.node_events.items())
            for i, ev in sorted(evs.items())
            if ev.outcome is None
            and self.h.events.get(i, {}).get("type") not in ("noop", "membership")
        ]
        return result("every committed command has its outcome (SPEC §7)", problems)

    def replay_matches_nodes(self) -> CheckResult:
        problems: list[str] = []
        for node, evs in sorted(self.h.node_events.items()):
            for index, ev in sorted(evs.items()):
                if ev.outcome is None or index > self.replay.last_index:
                    continue
                if json_digest(self.replay.outcomes.get(index)) != ev.outcome:
                    problems.append(f"{node} index {index}: outcome differs from the replay's")
        for node, state in sorted(self.h.final_states.items()):
            index = state["applied_index"]
            for target in FINAL_TARGETS:
                expected = self.replay.digests.get((index, target))
                if expected != list_digest(state[target]):
                    problems.append(f"{node}: final {target} at index {index} differ from replay")
        nodes = len(self.h.final_states)
        return result(
            "event log replays to every node's outcomes and final state",
            problems,
            f"{nodes} final states",
        )

    # -- writes against the log --------------------------------------------------------------

    def no_acknowledged_write_lost(self) -> CheckResult:
        problems: list[str] = []
        acked = [op for op in self.h.writes if op.outcome == OK]
        for op in acked:
            index, outcome = self._outcome(op)
            if outcome is None or outcome.get("result") != "accepted":
                problems.append(f"op {op.op_id} {op.kind} {op.args} acked but not applied")
                continue
            if json_digest(outcome["value"]) != op.body_digest:
                problems.append(f"op {op.op_id}: acked body differs from the log's (index {index})")
            for node, state in sorted(self.h.final_states.items()):
                missing = self._missing_from(op, state)
                if missing:
                    problems.append(f"op {op.op_id} acked, {node}'s final state: {missing}")
        return result("no acknowledged write lost", problems, f"{len(acked)} acknowledged")

    @staticmethod
    def _missing_from(op: WriteOp, state: dict[str, Any]) -> str:
        if op.kind == "update_status":
            job = next((j for j in state["jobs"] if j["id"] == op.args["job_id"]), None)
            allowed = _FORWARD.get(op.args["status"], {op.args["status"]})
            if job is None or job["status"] not in allowed:
                return (
                    f"job {op.args['job_id']} is {job and job['status']}, not {op.args['status']}"
                )
            return ""
        target = {"create_printer": "printers", "create_filament": "filaments"}.get(op.kind, "jobs")
        if not any(item["id"] == op.args["id"] for item in state[target]):
            return f"{op.args['id']} missing"
        return ""

    def refusals_applied_nothing(self) -> CheckResult:
        problems: list[str] = []
        refused = [op for op in self.h.writes if op.outcome == REFUSED]
        for op in refused:
            index, outcome = self._outcome(op)
            if outcome is None:
                problems.append(f"op {op.op_id} refused ({op.code}) but not in the log")
            elif outcome.get("result") != "refused" or outcome.get("code") != op.code:
                problems.append(
                    f"op {op.op_id} {op.kind} {op.args}: refused {op.code}, yet the log applied "
                    f"it at index {index} as {outcome.get('result')} {outcome.get('code', '')}"
                )
        return result(
            "nothing applied that a definitive refusal refused", problems, f"{len(refused)} refused"
        )

    def idempotency_at_most_once(self) -> CheckResult:
        problems: list[str] = []
        first: dict[str, int] = {}
        for index, event in sorted(self.h.events.items()):
            key = (event.get("payload") or {}).get("idempotency", {}).get("key")
            outcome = event.get("outcome")
            if key is None or outcome is None or outcome.get("replayed"):
                continue
            if key in first:
                problems.append(f"key {key} applied at index {first[key]} and again at {index}")
            else:
                first[key] = index
        for op in self.h.writes:
            answers = {(a.status, a.code) for a in op.attempts if a.status and a.status < 500}
            if len(answers) > 1:
                problems.append(f"op {op.op_id} key {op.key}: retries answered {sorted(answers)}")
        return result("idempotency keys applied at most once", problems, f"{len(first)} keys")

    def filament_invariants(self) -> CheckResult:
        problems: list[str] = []
        initial = {
            ev["payload"]["id"]: ev["payload"]["remaining_weight_in_grams"]
            for ev in self.h.events.values()
            if ev.get("type") == "create_filament"
            and (ev.get("outcome") or {}).get("result") == "accepted"
            and not ev["outcome"].get("replayed")
        }
        states = dict(sorted(self.h.final_states.items()))
        states["replay"] = self.replay.final
        for name, state in states.items():
            problems += [f"{name}: {p}" for p in filament_problems(state, initial)]
        return result("filament invariants", problems, f"{len(states)} states")

    def writes_linearizable(self) -> CheckResult:
        problems: list[str] = []
        parts = self.parts
        inconclusive = 0
        read_count = 0
        for name, ops in sorted(parts.items()):
            reads = []
            for r in self.part_reads.get(name, []):
                key = (r.index or 0, r.target)
                if self.replay.digests.get(key) == r.digest:  # what it showed is known
                    value = self.replay.projections[(r.index or 0, r.target, name)]
                    reads.append(ProjectedRead(r.op_id, r.target, value, r.invoke, r.complete))
            read_count += len(reads)
            verdict = check_partition(name, ops, reads, self.wgl_budget)
            if verdict is Verdict.VIOLATION:
                problems.append(f"{name}: no linearization of its {len(ops)} operations")
            elif verdict is Verdict.INCONCLUSIVE:
                inconclusive += 1
                problems.append(f"{name}: search budget exhausted ({len(ops)} operations)")
        unknown = sum(op.outcome == UNKNOWN for op in self.h.writes)
        detail = f"{len(parts)} partitions, {unknown} indeterminate ops, {read_count} read views"
        return result(
            "history linearizable (per filament with its jobs, per printer)", problems, detail
        )

    def write_order_respects_real_time(self) -> CheckResult:
        placed = []
        for op in self.h.writes:
            index, _ = self._outcome(op)
            if op.outcome in (OK, REFUSED) and index is not None:
                placed.append((op, index))
        problems = real_time_problems(placed)
        return result("log order respects real time", problems, f"{len(placed)} writes placed")

    # -- reads -----------------------------------------------------------------------------

    def reads_match_replay(self) -> CheckResult:
        problems: list[str] = []
        reads = self._good_reads()
        unverifiable = 0
        for read in reads:
            expected = self.replay.digests.get((read.index or 0, read.target))
            if read.index in self.replay.unverifiable:
                unverifiable += 1  # inside a log hole no node reported: nothing to compare
            elif expected is None:
                problems.append(f"read {read.op_id}: index {read.index} is beyond the event log")
            elif expected != read.digest:
                problems.append(
                    f"read {read.op_id} ({read.consistency} {read.target} on {read.node}) "
                    f"differs from the state at its index {read.index}"
                )
        detail = f"{len(reads)} reads" + (
            f", {unverifiable} inside a bridged hole not comparable" if unverifiable else ""
        )
        return result("every read equals the replayed state at its applied index", problems, detail)

    def linearizable_reads_not_stale(self) -> CheckResult:
        problems: list[str] = []
        writes = []
        for op in self.h.writes:
            index, _ = self._outcome(op)
            if index is not None:
                writes.append((op, index))
        done = sorted((op.complete, i) for op, i in writes if op.outcome in (OK, REFUSED))
        done_times = [t for t, _ in done]
        done_max = running(i for _, i in done)
        begun = sorted((op.invoke, i) for op, i in writes)
        begun_times = [t for t, _ in begun]
        begun_min = running((i for _, i in reversed(begun)), min)[::-1]
        reads = [r for r in self._good_reads() if r.consistency == "linearizable"]
        for read in reads:
            assert read.index is not None
            k = bisect.bisect_left(done_times, read.invoke)
            if k and done_max[k - 1] > read.index:
                problems.append(
                    f"read {read.op_id} on {read.node} at index {read.index} misses a write "
                    f"applied at {done_max[k - 1]} and answered before the read began"
                )
            k = bisect.bisect_right(begun_times, read.complete)
            if k < len(begun) and begun_min[k] <= read.index:
                problems.append(
                    f"read {read.op_id} at index {read.index} includes a write applied at "
                    f"{begun_min[k]} that began after the read ended"
                )
        by_end = sorted(reads, key=lambda r: r.complete)
        ends = [r.complete for r in by_end]
        seen_max = running(r.index or 0 for r in by_end)
        for read in reads:
            k = bisect.bisect_left(ends, read.invoke)
            if k and seen_max[k - 1] > (read.index or 0):
                problems.append(
                    f"read {read.op_id} at index {read.index} went back behind an earlier "
                    f"read's index {seen_max[k - 1]}"
                )
        return result(
            "linearizable reads neither stale nor from the future",
            problems,
            f"{len(reads)} linearizable reads",
        )

    def no_server_errors(self) -> CheckResult:
        problems = [
            f"op {op.op_id} {op.kind}: {a.status} {a.code} from {a.node}"
            for op in self.h.writes
            for a in op.attempts
            if a.status is not None and ((a.status >= 500 and a.status != 503) or a.status == 400)
        ]
        problems += [
            f"read {r.op_id}: {r.status} from {r.node}"
            for r in self.h.reads
            if r.status is not None and ((r.status >= 500 and r.status != 503) or r.status == 400)
        ]
        return result("no 500s and no 400s for valid requests", problems)
