"""Snapshot capture: O(1) on the caller's thread, isolated from later writes, compact bytes,
and outcomes that survive a restore (issue 8, items 1 and 2)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from raft3d.domain import FarmStateMachine, JobStatus, Printer, persistent, record_table
from raft3d.domain import model as domain_model
from raft3d.domain.commands import CreatePrinter, IdempotencyTag
from raft3d.domain.persistent import OrderedPMap
from raft3d.domain.results import Accepted, Rejected
from tests.support.farms import accepted, apply, busy_farm, job, printer, status


def tag(key: str) -> IdempotencyTag:
    return IdempotencyTag(key=key, fingerprint=f"fp-{key}")


def big_farm(printers: int) -> FarmStateMachine:
    machine = busy_farm()
    for n in range(printers):
        apply(machine, printer(f"bulk-{n}", tag=tag(f"bulk-{n}")))
    return machine


class _Counting:
    """Counts per-record work: object encodings and walks over frozen views."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for cls in (domain_model.Printer, domain_model.Filament, domain_model.PrintJob):
            monkeypatch.setattr(cls, "to_dict", self._wrap(cls.to_dict))
        for name in ("items", "values"):
            monkeypatch.setattr(
                persistent.FrozenView, name, self._wrap(getattr(persistent.FrozenView, name))
            )
        for name in ("items", "values"):
            monkeypatch.setattr(
                persistent.OrderedPMap, name, self._wrap(getattr(persistent.OrderedPMap, name))
            )
        for name in ("values", "chunks", "slice_values"):
            monkeypatch.setattr(
                record_table.RecordsView, name, self._wrap(getattr(record_table.RecordsView, name))
            )

    def _wrap(self, method: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return method(*args, **kwargs)

        return counted


@pytest.mark.parametrize("size", [10, 5000])
def test_capture_does_no_per_record_work_at_any_size(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = big_farm(size)
    counting = _Counting(monkeypatch)
    capture = machine.capture()
    assert counting.calls == 0  # nothing walked, nothing encoded
    # It shares the live state's structures instead of copying them.
    assert capture.farm.printers._chunks is machine._farm._printers._map._chunks
    assert capture.idempotency._map is machine._idempotency._records._map
    assert len(capture.farm.printers) == size + 1
    capture.encode()
    assert counting.calls > 0  # the walk over the views happens in encode()


def test_encoding_copies_the_stored_objects_without_encoding_them_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine = big_farm(5000)
    expected = machine.snapshot()
    counting = _Counting(monkeypatch)
    assert machine.snapshot() == expected
    # A few walks over the views, and no per-object to_dict: the stored bytes are joined.
    assert 0 < counting.calls < 10


def test_a_capture_is_not_changed_by_later_writes() -> None:
    FarmStateMachine.IDEMPOTENCY_CAPACITY = 7  # evictions and trims of the key order
    try:
        machine = big_farm(50)
        expected = machine.snapshot()
        capture = machine.capture()
        for n in range(3000):  # past the trim threshold of the order list
            apply(machine, printer(f"later-{n}", tag=tag(f"later-{n}")))
        apply(machine, status("queued", JobStatus.RUNNING))
        apply(machine, status("running", JobStatus.DONE))
        machine.forget_outcomes(machine.last_applied_index - 2)
        assert capture.encode() == expected
        restored = FarmStateMachine()
        restored.restore(capture.encode())
        assert [p.id for p in restored.printers()][-1] == "bulk-49"
        assert [j.status for j in restored.print_jobs()][:2] == [
            JobStatus.QUEUED,
            JobStatus.RUNNING,
        ]
    finally:
        FarmStateMachine.IDEMPOTENCY_CAPACITY = 100_000


def test_non_ascii_text_is_stored_as_utf8_not_escaped() -> None:
    machine = FarmStateMachine()
    company = "Prüsa Ωmega 打印机 " * 200
    apply(machine, CreatePrinter(id="p1", company=company, model="MK4", idempotency=None))
    data = machine.snapshot()
    assert company.encode() in data
    assert b"\\u" not in data
    # The company appears twice (the object and the entry's outcome); little else is stored.
    assert len(data) < 2 * len(company.encode()) + 400


def test_outcomes_survive_a_restore_until_forgotten() -> None:
    machine = busy_farm()
    last = machine.last_applied_index
    original = {i: machine.outcome(i) for i in range(1, last + 1)}
    assert all(isinstance(o, (Accepted, Rejected)) for o in original.values())
    restored = FarmStateMachine()
    restored.restore(machine.snapshot())
    assert {i: restored.outcome(i) for i in range(1, last + 1)} == original
    restored.forget_outcomes(last - 2)
    assert [restored.outcome(i) for i in range(1, last + 1)][-3:] == [
        None,
        original[last - 1],
        original[last],
    ]
    again = FarmStateMachine()
    again.restore(restored.snapshot())
    assert again.outcome(last - 2) is None and again.outcome(last) == original[last]


def test_a_replayed_outcome_keeps_its_flag_through_a_snapshot() -> None:
    machine = FarmStateMachine()
    accepted(apply(machine, printer("p1", tag=tag("k"))))
    replay = apply(machine, printer("p1", tag=tag("k")))
    assert isinstance(replay, Accepted) and replay.replayed
    restored = FarmStateMachine()
    restored.restore(machine.snapshot())
    assert restored.outcome(2) == replay


def test_format_1_snapshots_without_outcomes_are_still_read() -> None:
    machine = busy_farm()
    document = msgpack.unpackb(machine.snapshot(), raw=False)
    document["format"] = 1
    del document["outcomes"]
    restored = FarmStateMachine()
    restored.restore(msgpack.packb(document, use_bin_type=True))
    assert restored.digest() == machine.digest()
    assert restored.outcome(1) is None


def test_ordered_pmap_views_and_eviction() -> None:
    pmap: OrderedPMap[str, int] = OrderedPMap([("a", 1), ("b", 2)])
    view = pmap.view()
    pmap["a"] = 10  # replaced in place: keeps its position
    pmap["c"] = 3
    assert pmap.items() == [("a", 10), ("b", 2), ("c", 3)]
    assert list(view.items()) == [("a", 1), ("b", 2)]
    assert pmap.pop_oldest() == "a" and "a" not in pmap
    pmap["a"] = 4  # back, now the newest
    assert pmap.values() == [2, 3, 4] and pmap.oldest() == "b"
    for n in range(5000):
        pmap[f"k{n}"] = n
        pmap.pop_oldest()
    assert len(pmap) == 3 and pmap.values() == [4997, 4998, 4999]
    assert list(view.values()) == [1, 2]
    with pytest.raises(ValueError):
        OrderedPMap([("x", 1), ("x", 2)])


def test_queries_still_list_objects_in_creation_order() -> None:
    machine = busy_farm()
    apply(machine, job("late", 1))
    assert [j.id for j in machine.print_jobs()][-1] == "late"
    assert machine.printers() == [Printer(id="p1", company="Creality", model="Ender 3")]
