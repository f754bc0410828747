"""The farm's record table: records by id in creation order, no key kept beside them."""

from __future__ import annotations

import gc
import random

import msgpack
import pytest

from raft3d.domain import record_table
from raft3d.domain.record_table import BUCKET, CHUNK, RecordTable


def record(key: str, version: int = 0) -> bytes:
    return msgpack.packb({"id": key, "version": version}, use_bin_type=True)  # type: ignore[no-any-return]


def check_against(table: RecordTable, model: dict[str, bytes]) -> None:
    assert len(table) == len(model)
    assert list(table.view().values()) == list(model.values())
    for key, raw in model.items():
        assert key in table
        assert table[key] == raw
        assert table.get(key) == raw


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_behaves_as_an_insertion_ordered_dict(seed: int) -> None:
    rng = random.Random(seed)
    table, model = RecordTable(), {}
    for step in range(5000):
        key = f"k{rng.randrange(3000)}"
        raw = record(key, step)
        table.put(key, raw)
        model[key] = raw  # a dict keeps the first insertion's place on replace, as the table
    check_against(table, model)
    for missing in ("k3000", "", "k-1", "x" * 40):
        assert missing not in table
        assert table.get(missing) is None
        with pytest.raises(KeyError):
            table[missing]
    # Enough keys to split buckets and double the directory many times.
    assert len(model) > 10 * BUCKET
    assert table._depth > 3


def test_add_refuses_a_key_already_there_and_changes_nothing() -> None:
    table = RecordTable()
    assert table.add("a", record("a"))
    assert not table.add("a", record("a", 1))
    assert table["a"] == record("a") and len(table) == 1


def test_a_record_must_start_with_its_own_id() -> None:
    table = RecordTable()
    with pytest.raises(ValueError, match="does not start with its id"):
        table.put("a", record("b"))
    with pytest.raises(ValueError, match="does not start with its id"):
        table.put("a", msgpack.packb({"name": "a", "id": "a"}))
    assert len(table) == 0


def test_a_view_is_not_changed_by_later_replacements_and_appends() -> None:
    table = RecordTable()
    count = 3 * CHUNK + 5  # full chunks and a partial tail
    for n in range(count):
        table.put(f"k{n}", record(f"k{n}"))
    view = table.view()
    before = list(view.values())
    for n in range(count):  # every record replaced, in the chunks and in the tail
        table.put(f"k{n}", record(f"k{n}", 1))
    for n in range(count, count + 2 * CHUNK):
        table.put(f"k{n}", record(f"k{n}"))
    assert list(view.values()) == before
    assert len(view) == count
    assert [view.at(i) for i in (0, CHUNK, count - 1, -1)] == [
        before[0],
        before[CHUNK],
        before[-1],
        before[-1],
    ]
    assert view.slice_values(slice(CHUNK - 2, CHUNK + 2)) == before[CHUNK - 2 : CHUNK + 2]
    assert view.slice_values(slice(None, None, -3)) == before[::-3]
    with pytest.raises(IndexError):
        view.at(count)
    chunks = list(view.chunks(2 * CHUNK))
    assert [raw for chunk in chunks for raw in chunk] == before
    assert max(len(chunk) for chunk in chunks) == 2 * CHUNK
    assert table["k0"] == record("k0", 1)


def test_a_view_shares_the_chunks_until_the_next_change() -> None:
    table = RecordTable()
    for n in range(2 * CHUNK):
        table.put(f"k{n}", record(f"k{n}"))
    view = table.view()
    assert view._chunks is table._chunks  # O(1): nothing copied
    table.put("k0", record("k0", 1))
    assert view._chunks is not table._chunks  # the first change copied the list
    copied = table._chunks
    table.put("k1", record("k1", 1))
    assert table._chunks is copied  # and only once per view


def test_keys_whose_hashes_all_collide_are_still_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_table, "_hash", lambda key: 12345)
    table, model = RecordTable(), {}
    for n in range(10 * BUCKET):
        key = f"k{n}"
        model[key] = record(key)
        table.put(key, model[key])
    check_against(table, model)
    assert "k-1" not in table
    # Splitting cannot separate equal hashes: the directory grows no faster than the table.
    assert len(table._directory) <= 2 * len(table)


def test_the_collector_has_nothing_of_the_table_to_walk() -> None:
    table = RecordTable()
    for n in range(20 * BUCKET):
        table.put(f"k{n}", record(f"k{n}"))
    gc.collect()  # tuples of untracked items are untracked by a collection
    assert table._depth > 2
    tracked = [table._chunks, table._directory]  # two lists: what the collector walks
    assert not any(gc.is_tracked(part) for part in (*table._chunks, *table._directory))
    assert all(gc.is_tracked(part) for part in tracked)
