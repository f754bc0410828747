"""Outcomes by log index: appended in order, dropped from the oldest, viewed frozen."""

from __future__ import annotations

import pytest

from raft3d.domain.persistent import IndexedValues


def items(values: IndexedValues[str]) -> list[tuple[int, str]]:
    return [item for chunk in values.view().item_chunks(7) for item in chunk]


def test_lookups_with_gaps_and_drops() -> None:
    values = IndexedValues([(2, "b"), (3, "c"), (7, "g")])
    assert [values.get(k) for k in (1, 2, 3, 4, 7, 8)] == [None, "b", "c", None, "g", None]
    values.drop_through(4)  # between keys
    assert len(values) == 1 and values.get(3) is None and values.get(7) == "g"
    values.drop_through(1)  # already gone: nothing changes
    assert items(values) == [(7, "g")]
    values.drop_through(100)
    assert len(values) == 0 and values.get(7) is None
    values.append(5, "e")  # after everything was dropped, any later key is fine
    assert items(values) == [(5, "e")]


def test_keys_must_increase() -> None:
    values = IndexedValues([(5, "e")])
    for key in (5, 4):
        with pytest.raises(ValueError, match="is not after"):
            values.append(key, "x")
    with pytest.raises(ValueError, match="is not after"):
        IndexedValues([(2, "b"), (2, "c")])


def test_a_view_is_not_changed_by_appends_drops_and_trims() -> None:
    values = IndexedValues((k, str(k)) for k in range(1, 101))
    view = values.view()
    expected = [(k, str(k)) for k in range(1, 101)]
    for k in range(101, 5001):
        values.append(k, str(k))
        values.drop_through(k - 50)  # trims the dead front more than once on the way
    assert len(values._keys) < 2000  # the dead front was trimmed
    assert [item for chunk in view.item_chunks(30) for item in chunk] == expected
    assert len(view) == 100
    assert items(values) == [(k, str(k)) for k in range(4951, 5001)]
    assert values.get(4950) is None and values.get(4951) == "4951"
