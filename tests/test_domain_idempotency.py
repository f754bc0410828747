"""Unit tests of idempotency keys: a retry replays the original result and changes nothing,
a reused key with another request is refused, and the table keeps its newest keys in log
order, across snapshots too."""

from __future__ import annotations

import pytest

from raft3d.domain import (
    Accepted,
    Command,
    FarmStateMachine,
    JobStatus,
    Rejected,
)
from tests.support.farms import (
    accepted,
    apply,
    farm,
    job,
    printer,
    rejected_code,
    status,
    tag,
)

# -- idempotency --------------------------------------------------------------------------


def test_retry_replays_the_original_result_and_changes_nothing() -> None:
    machine = farm()
    first = apply(machine, job("j1", 100, tag=tag("k1")))
    accepted(apply(machine, status("j1", JobStatus.RUNNING)))
    before = machine.digest()

    retry = apply(machine, job("j1", 100, tag=tag("k1")))

    assert isinstance(first, Accepted) and not first.replayed
    assert retry == Accepted(first.value, replayed=True)
    assert accepted(retry)["status"] == "Queued"  # as first returned, not as the job is now
    assert machine.digest() == before
    assert len(machine.print_jobs()) == 1


def test_a_refused_result_is_remembered_and_replayed() -> None:
    machine = farm()
    first = apply(machine, job("j1", 100, printer_id="p2", tag=tag("k1")))
    assert rejected_code(first) == "unknown_printer"
    accepted(apply(machine, printer("p2")))  # the retry would now succeed if re-executed

    retry = apply(machine, job("j1", 100, printer_id="p2", tag=tag("k1")))

    assert isinstance(first, Rejected)
    assert retry == Rejected(first.code, first.message, first.details, replayed=True)
    assert machine.print_jobs() == []


def test_a_reused_key_with_another_request_is_refused_and_not_recorded() -> None:
    machine = farm()
    first = apply(machine, printer("p2", tag=tag("k1", "fp-a")))
    before = machine.digest()

    reused = apply(machine, printer("p3", tag=tag("k1", "fp-b")))

    assert rejected_code(reused) == "idempotency_key_reused"
    assert isinstance(reused, Rejected) and reused.details == {"key": "k1"}
    assert machine.digest() == before
    assert [p.id for p in machine.printers()] == ["p1", "p2"]
    # The key still answers for its first request.
    assert apply(machine, printer("p2", tag=tag("k1", "fp-a"))) == Accepted(
        accepted(first), replayed=True
    )


def test_commands_without_a_key_are_not_deduplicated() -> None:
    machine = farm()
    accepted(apply(machine, printer("p2")))
    assert rejected_code(apply(machine, printer("p2"))) == "duplicate_id"


def test_replayed_results_are_copies() -> None:
    machine = farm()
    first = apply(machine, printer("p2", tag=tag("k1")))
    accepted(first)["model"] = "changed by the caller"
    retry = apply(machine, printer("p2", tag=tag("k1")))
    accepted(retry)["model"] = "changed again"
    assert accepted(apply(machine, printer("p2", tag=tag("k1"))))["model"] == "Ender 3"


def _is_remembered(machine: FarmStateMachine, key: str, pid: str) -> bool:
    """Whether ``key`` still replays (probing with its own request changes nothing then)."""
    result = apply(machine, printer(pid, tag=tag(key)))
    return result.replayed


def test_oldest_keys_are_evicted_in_log_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 3)
    machine = FarmStateMachine()
    for n in range(1, 5):
        accepted(apply(machine, printer(f"p{n}", tag=tag(f"k{n}"))))

    # k1 fell out: the same request runs again (and now hits the duplicate id).
    assert rejected_code(apply(machine, printer("p1", tag=tag("k1")))) == "duplicate_id"
    # That re-run recorded k1 anew, evicting k2, the oldest.
    assert not _is_remembered(machine, "k2", "p2")  # re-records k2, evicting k3
    assert _is_remembered(machine, "k4", "p4")
    assert _is_remembered(machine, "k1", "p1")
    assert _is_remembered(machine, "k2", "p2")
    assert not _is_remembered(machine, "k3", "p3")


def test_a_replay_does_not_refresh_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 2)
    machine = FarmStateMachine()
    accepted(apply(machine, printer("p1", tag=tag("k1"))))
    accepted(apply(machine, printer("p2", tag=tag("k2"))))
    assert _is_remembered(machine, "k1", "p1")  # replay, k1 stays the oldest
    accepted(apply(machine, printer("p3", tag=tag("k3"))))  # evicts k1, not k2
    assert _is_remembered(machine, "k2", "p2")
    assert not _is_remembered(machine, "k1", "p1")


def test_a_reused_key_rejection_does_not_evict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 2)
    machine = FarmStateMachine()
    accepted(apply(machine, printer("p1", tag=tag("k1"))))
    accepted(apply(machine, printer("p2", tag=tag("k2"))))
    assert rejected_code(apply(machine, printer("x", tag=tag("k2", "other")))) == (
        "idempotency_key_reused"
    )
    assert _is_remembered(machine, "k1", "p1")
    assert _is_remembered(machine, "k2", "p2")


def test_snapshot_keeps_the_idempotency_table_and_its_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 3)
    original = FarmStateMachine()
    accepted(apply(original, printer("p1", tag=tag("k1"))))
    accepted(apply(original, printer("p2", tag=tag("k2"))))
    assert rejected_code(apply(original, printer("p1", tag=tag("k3")))) == "duplicate_id"
    copy = FarmStateMachine()
    copy.restore(original.snapshot())
    assert copy.digest() == original.digest()

    follow_up: list[Command] = [
        printer("p2", tag=tag("k2")),  # replay of an accepted result
        printer("p1", tag=tag("k3")),  # replay of a refused result
        printer("zz", tag=tag("k1", "other")),  # key reused
        printer("p4", tag=tag("k4")),  # new key: evicts k1 on both
        printer("p1", tag=tag("k1")),  # k1 gone: runs again on both
    ]
    for command in follow_up:
        assert apply(copy, command) == apply(original, command)
        assert copy.digest() == original.digest()
    assert _is_remembered(copy, "k2", "p2") is False  # evicted by k1's re-run


def test_restoring_a_bigger_table_keeps_its_newest_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    source = FarmStateMachine()
    for n in range(1, 5):
        accepted(apply(source, printer(f"p{n}", tag=tag(f"k{n}"))))
    monkeypatch.setattr(FarmStateMachine, "IDEMPOTENCY_CAPACITY", 2)
    small = FarmStateMachine()
    small.restore(source.snapshot())
    assert _is_remembered(small, "k4", "p4")
    assert _is_remembered(small, "k3", "p3")
    assert not _is_remembered(small, "k2", "p2")
