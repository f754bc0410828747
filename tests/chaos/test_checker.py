"""The chaos checker is itself tested: hand-made bad histories must each be flagged, and a
good one (recorded from a perfect, sequential farm) must pass every check."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from raft3d.api.events import command_payload
from raft3d.api.rendering import outcome_json
from raft3d.domain import FarmStateMachine, encode_command

from .checker import Checker
from .collector import EventCollector
from .history import OK, REFUSED, UNKNOWN, History, ReadOp, WriteOp, json_digest, list_digest
from .linearizability import Timed, Verdict, check
from .model import FilamentState, filament_step
from .replay import command_from_event, state_lists
from .verdicts import CheckResult

NODES = ("n1", "n2", "n3")
KINDS = {
    "create_printer": "create_printer",
    "create_filament": "create_filament",
    "create_job": "create_print_job",
    "update_status": "update_job_status",
}


class Recorder:
    """A perfect farm: applies each write at the next index and records it like a run does."""

    def __init__(self) -> None:
        self.sm = FarmStateMachine()
        self.index = 0
        self.t = 0.0
        self.h = History(seed=0, started=0.0)
        self.collector = EventCollector(dict.fromkeys(NODES, ""), self.h)

    def tick(self) -> float:
        self.t += 1.0
        return self.t

    def event(self, kind: str, payload: dict[str, Any], key: str) -> dict[str, Any]:
        self.index += 1
        event = {"index": self.index, "term": 1, "type": KINDS[kind]}
        event["payload"] = {**payload, "idempotency": {"key": key}}
        command = command_from_event(event)
        assert command_payload(command) == event["payload"]
        event["outcome"] = outcome_json(self.sm.apply(self.index, encode_command(command)))
        for node in NODES:
            self.collector.record(node, copy.deepcopy(event))
        return event

    def write(self, kind: str, payload: dict[str, Any], **args: Any) -> WriteOp:
        key = f"k{len(self.h.writes) + 1}"
        op = WriteOp(len(self.h.writes) + 1, 1, kind, {**payload, **args}, key, self.tick(), 0.0)
        outcome = self.event(kind, payload, key)["outcome"]
        op.complete = self.tick()
        if outcome["result"] == "accepted":
            op.outcome, op.body_digest = OK, json_digest(outcome["value"])
        else:
            op.outcome, op.code = REFUSED, outcome["code"]
        self.h.writes.append(op)
        return op

    def read(self, target: str, consistency: str = "linearizable", node: str = "n1") -> ReadOp:
        items = state_lists(self.sm)[target]
        read = ReadOp(1000 + len(self.h.reads), 2, node, target, consistency, self.tick(),
                      self.tick(), 200, self.index, list_digest(items), len(items))  # fmt: skip
        self.h.reads.append(read)
        return read

    def finish(self) -> History:
        lists = state_lists(self.sm)
        for node in NODES:
            self.h.final_states[node] = {
                "applied_index": self.index,
                **{t: copy.deepcopy(lists[t]) for t in ("printers", "filaments", "jobs")},
            }
        self.h.ended = self.tick()
        return self.h


def printer(pid: str) -> dict[str, Any]:
    return {"id": pid, "company": "Creality", "model": "Ender 3"}


def roll(fid: str, grams: int = 1000) -> dict[str, Any]:
    return {"id": fid, "type": "PLA", "color": "red", "total_weight_in_grams": grams,
            "remaining_weight_in_grams": grams}  # fmt: skip


def job(jid: str, fid: str, grams: int) -> dict[str, Any]:
    return {"id": jid, "printer_id": "p1", "filament_id": fid, "filepath": f"{jid}.gcode",
            "print_weight_in_grams": grams}  # fmt: skip


def farm() -> Recorder:
    """A small good history: rolls, competing reservations, transitions, reads."""
    rec = Recorder()
    rec.write("create_printer", printer("p1"))
    rec.write("create_filament", roll("f1"), filament_id="f1")
    rec.read("filaments")
    rec.write("create_job", job("j1", "f1", 600), filament_id="f1")
    rec.write("create_job", job("j2", "f1", 600), filament_id="f1")  # refused: 400 g left
    rec.read("jobs_queued", "local", "n2")
    rec.write("update_status", {"job_id": "j1", "status": "Running"}, filament_id="f1")
    rec.write("update_status", {"job_id": "j1", "status": "Done"}, filament_id="f1")
    rec.write("create_job", job("j3", "f1", 400), filament_id="f1")
    rec.write("update_status", {"job_id": "j3", "status": "Done"}, filament_id="f1")  # refused
    rec.write("create_printer", printer("p1"))  # refused: duplicate
    rec.read("filaments", node="n3")
    rec.read("printers")
    return rec


def failing(results: list[CheckResult]) -> set[str]:
    return {r.name for r in results if not r.ok}


def test_a_good_history_passes_every_check() -> None:
    history = farm().finish()
    results = Checker(history).run()
    assert failing(results) == set(), "\n".join(r.line() for r in results)
    assert {op.outcome for op in history.writes} == {OK, REFUSED}


def test_a_lost_acknowledged_write_is_flagged() -> None:
    rec = farm()
    lost = WriteOp(99, 1, "create_printer", {"id": "p-lost"}, "k-lost", rec.tick(), rec.tick(),
                   OK, body_digest=json_digest(printer("p-lost")))  # fmt: skip
    rec.h.writes.append(lost)
    assert "no acknowledged write lost" in failing(Checker(rec.finish()).run())


def test_a_stale_linearizable_read_is_flagged() -> None:
    rec = farm()
    before = rec.read("printers")  # the state before p2 exists
    rec.write("create_printer", printer("p2"))
    stale = rec.read("printers")
    stale.index, stale.digest = before.index, before.digest  # answered from the old state
    failed = failing(Checker(rec.finish()).run())
    assert failed == {
        "linearizable reads neither stale nor from the future",
        "history linearizable (per filament with its jobs, per printer)",  # p2 vanished
    }


def test_a_read_that_differs_from_the_state_at_its_index_is_flagged() -> None:
    rec = farm()
    rec.read("filaments", "local", "n2").digest = list_digest([])
    failed = failing(Checker(rec.finish()).run())
    assert failed == {"every read equals the replayed state at its applied index"}


def test_a_double_applied_retry_is_flagged() -> None:
    rec = farm()
    op = rec.write("create_job", job("j4", "f1", 100), filament_id="f1")
    # The retry of op (same key) was applied a second time instead of being replayed.
    rec.index += 1
    again = {"index": rec.index, "term": 1, "type": "create_print_job",
             "payload": {**job("j4", "f1", 100), "idempotency": {"key": op.key}},
             "outcome": {"result": "refused", "code": "duplicate_id", "message": "...",
                         "details": {}, "replayed": False}}  # fmt: skip
    for node in NODES:
        rec.collector.record(node, copy.deepcopy(again))
    failed = failing(Checker(rec.finish()).run())
    assert "idempotency keys applied at most once" in failed
    assert "event log replays to every node's outcomes and final state" in failed


def test_an_over_reserved_roll_is_flagged() -> None:
    rec = farm()
    rec.write("create_filament", roll("f2"), filament_id="f2")
    rec.write("create_job", job("j5", "f2", 600), filament_id="f2")
    refused = rec.write("create_job", job("j6", "f2", 600), filament_id="f2")
    assert refused.outcome == REFUSED
    # The cluster acknowledged both reservations and its state holds both.
    refused.outcome, refused.code = OK, ""
    refused.body_digest = json_digest({**job("j6", "f2", 600), "status": "Queued"})
    history = rec.finish()
    for state in history.final_states.values():
        state["jobs"].append({**job("j6", "f2", 600), "status": "Queued"})
    failed = failing(Checker(history).run())
    assert {"filament invariants", "no acknowledged write lost",
            "history linearizable (per filament with its jobs, per printer)"} <= failed  # fmt: skip


def test_a_divergent_event_log_is_flagged() -> None:
    rec = farm()
    history = rec.finish()
    other = copy.deepcopy(history.events[4])
    other["payload"]["print_weight_in_grams"] = 599
    rec.collector.record("n2", other)
    history.events[4] = copy.deepcopy(rec.h.events[4])
    assert "event logs identical across nodes" in failing(Checker(history).run())


def test_a_refusal_that_was_applied_is_flagged() -> None:
    rec = farm()
    rec.write("create_filament", roll("f3"), filament_id="f3")
    op = rec.write("create_job", job("j7", "f3", 100), filament_id="f3")
    assert op.outcome == OK
    op.outcome, op.code = REFUSED, "insufficient_filament"  # the client was told no
    failed = failing(Checker(rec.finish()).run())
    assert "nothing applied that a definitive refusal refused" in failed


def test_a_null_outcome_is_flagged() -> None:
    rec = farm()
    history = rec.finish()
    event = copy.deepcopy(history.events[3])
    event["outcome"] = None
    rec.collector.record("n3", event)
    failed = failing(Checker(history).run())
    assert failed == {"every committed command has its outcome (SPEC §7)"}


def _op(kind: str, outcome: str, call: float, ret: float, **args: Any) -> Timed[WriteOp]:
    op = WriteOp(0, 0, kind, {"filament_id": "f", **args}, "k", call, ret, outcome)
    if outcome not in (OK, UNKNOWN):
        op.outcome, op.code = REFUSED, outcome
    return Timed(op, call, float("inf") if outcome == UNKNOWN else ret)


@pytest.mark.parametrize(
    ("second", "verdict"),
    [
        ("insufficient_filament", Verdict.LINEARIZABLE),  # only one of them fits
        (OK, Verdict.VIOLATION),  # both acknowledged: the roll is over-reserved
        (UNKNOWN, Verdict.LINEARIZABLE),  # may not have happened
    ],
)
def test_the_search_judges_competing_reservations(second: str, verdict: Verdict) -> None:
    roll_op = _op("create_filament", OK, 0, 1, remaining_weight_in_grams=1000)
    first = _op("create_job", OK, 2, 5, id="a", print_weight_in_grams=600)
    other = _op("create_job", second, 3, 4, id="b", print_weight_in_grams=600)
    state = FilamentState(False, 0, frozenset())
    assert check([roll_op, first, other], state, filament_step) is verdict


def test_the_search_orders_by_real_time() -> None:
    roll_op = _op("create_filament", OK, 0, 1, remaining_weight_in_grams=1000)
    refused = _op("create_job", "insufficient_filament", 2, 3, id="b", print_weight_in_grams=600)
    later = _op("create_job", OK, 4, 5, id="a", print_weight_in_grams=600)  # after the refusal
    state = FilamentState(False, 0, frozenset())
    assert check([roll_op, refused, later], state, filament_step) is Verdict.VIOLATION
    concurrent = _op("create_job", OK, 2.5, 5, id="a", print_weight_in_grams=600)
    assert check([roll_op, refused, concurrent], state, filament_step) is Verdict.LINEARIZABLE


def _with_hole() -> tuple[History, dict[int, bytes]]:
    """A good history whose entries 4..6 no node reported (compacted before being read)."""
    rec = Recorder()
    rec.write("create_printer", printer("p1"))
    rec.write("create_filament", roll("f1"), filament_id="f1")
    rec.write("create_job", job("j1", "f1", 300), filament_id="f1")
    rec.write("create_job", job("j2", "f1", 300), filament_id="f1")
    rec.read("jobs_queued")  # at index 4: inside the hole, cannot be compared
    rec.write("update_status", {"job_id": "j1", "status": "Running"}, filament_id="f1")
    rec.write("update_status", {"job_id": "j1", "status": "Running"}, filament_id="f1")
    snapshot = rec.sm.snapshot()
    rec.read("jobs_running")  # at index 6, the snapshot's: compared
    rec.write("update_status", {"job_id": "j1", "status": "Done"}, filament_id="f1")
    history = rec.finish()
    for index in (4, 5, 6):
        del history.events[index]
        for events in history.node_events.values():
            del events[index]
    return history, {6: snapshot}


def test_a_hole_in_the_collected_log_is_bridged_by_a_snapshot() -> None:
    history, snapshots = _with_hole()
    checker = Checker(history, snapshots)
    results = checker.run()
    assert failing(results) == set(), "\n".join(r.line() for r in results)
    assert checker.replay.bridges == [(4, 6)]
    assert checker.replay.unverifiable == {4}


def test_a_hole_without_a_snapshot_is_flagged() -> None:
    history, _ = _with_hole()
    assert "event log collected without gaps" in failing(Checker(history).run())
