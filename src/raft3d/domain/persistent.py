"""An insertion-ordered map whose frozen views cost O(1): the state behind cheap snapshots.

Why: the node runs HTTP, Raft and apply on one event loop. Serialising a large state on that
loop stalls it for as long as encoding takes (seconds at a million objects), long enough to
lose leadership. So a snapshot is taken in two steps:

1. *capture*, on the loop: take a ``FrozenView`` of every map. That copies nothing: the values
   live in an ``immutables.Map`` (a persistent hash array mapped trie: every update makes a new
   map that shares all untouched nodes with the old one), so a view just keeps a reference to
   the current map, the key-order list and two integers. Cost: independent of the state size.
2. *encode*, later, in pieces (the node does it on its loop in short slices, see
   ``raft3d.node.snapshotting``; any thread would do): walk the views and pack them. Entries
   are applied meanwhile; applying only ever builds new maps, so the captured ones never
   change underneath the encoder.

Order: keys remember when they were first inserted (creation order for objects, log order for
idempotency records). The order is an append-only list of keys plus a ``head`` offset for
keys removed from the front (``pop_oldest``). A view records the list and the ``[head, end)``
range it covers; the loop only appends past ``end``, and when it trims dead keys off the
front it builds a new list rather than editing the one views may hold. Removing a key other
than the oldest is not supported: nothing in the domain needs it.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

import immutables

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Dead keys at the front of the order list are trimmed once there are this many and they
# make up half of it, so trimming is amortised O(1) per removal.
_TRIM_AT = 1024


class FrozenView(Generic[K, V]):
    """An unchanging picture of an ``OrderedPMap``; safe to read from any thread."""

    __slots__ = ("_end", "_head", "_keys", "_map")

    def __init__(self, mapping: immutables.Map[K, V], keys: list[K], head: int, end: int) -> None:
        self._map, self._keys, self._head, self._end = mapping, keys, head, end

    def __len__(self) -> int:
        return self._end - self._head

    def items(self) -> Iterator[tuple[K, V]]:
        mapping = self._map
        for key in self._keys[self._head : self._end]:
            yield key, mapping[key]

    def values(self) -> Iterator[V]:
        mapping = self._map
        for key in self._keys[self._head : self._end]:
            yield mapping[key]

    def item_chunks(self, size: int) -> Iterator[list[tuple[K, V]]]:
        """The items in insertion order, ``size`` at a time."""
        mapping, keys = self._map, self._keys
        for start in range(self._head, self._end, size):
            yield [(key, mapping[key]) for key in keys[start : min(start + size, self._end)]]


class OrderedPMap(Generic[K, V]):
    """A mutable, insertion-ordered map over persistent parts; see the module docstring."""

    __slots__ = ("_head", "_keys", "_map")

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        plain: dict[K, V] = {}
        for key, value in items:
            if key in plain:
                raise ValueError(f"key {key!r} appears twice")
            plain[key] = value
        self._map: immutables.Map[K, V] = immutables.Map(plain)  # built in C, in one go
        self._keys = list(plain)
        self._head = 0

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: K) -> bool:
        return key in self._map

    def get(self, key: K) -> V | None:
        return self._map.get(key)

    def __getitem__(self, key: K) -> V:
        return self._map[key]

    def __setitem__(self, key: K, value: V) -> None:
        """Insert (at the end of the order) or replace (keeping the key's place)."""
        if key not in self._map:
            self._keys.append(key)
        self._map = self._map.set(key, value)

    def oldest(self) -> K | None:
        return self._keys[self._head] if len(self._map) else None

    def pop_oldest(self) -> K:
        if not len(self._map):
            raise KeyError("pop from an empty map")
        key = self._keys[self._head]
        self._head += 1
        self._map = self._map.delete(key)
        if self._head >= _TRIM_AT and self._head * 2 >= len(self._keys):
            # A new list: views taken earlier keep reading the old one.
            self._keys = self._keys[self._head :]
            self._head = 0
        return key

    def values(self) -> list[V]:
        mapping = self._map
        return [mapping[key] for key in self._keys[self._head :]]

    def items(self) -> list[tuple[K, V]]:
        mapping = self._map
        return [(key, mapping[key]) for key in self._keys[self._head :]]

    def view(self) -> FrozenView[K, V]:
        """O(1): no copying, whatever the size."""
        return FrozenView(self._map, self._keys, self._head, len(self._keys))


class IndexedValues(Generic[V]):
    """Values under increasing integer keys (log indexes), appended in key order, dropped
    from the oldest: what the state machine keeps of each applied entry's outcome.

    Two parallel lists and a ``head`` offset, like ``OrderedPMap``'s order list, without the
    map: a lookup is a bisection, dropping every key up to one is a bisection and a new
    ``head``, O(log n) however many go (one snapshot drops some 10,000 outcomes; one map
    deletion each held the loop 6-12 ms). Views are O(1), as ``OrderedPMap``'s: appends go
    past their end, and a trim of the dead front builds new lists.
    """

    __slots__ = ("_head", "_keys", "_values")

    def __init__(self, items: Iterable[tuple[int, V]] = ()) -> None:
        self._keys: list[int] = []
        self._values: list[V] = []
        self._head = 0
        for key, value in items:
            self.append(key, value)

    def __len__(self) -> int:
        return len(self._keys) - self._head

    def append(self, key: int, value: V) -> None:
        if len(self._keys) > self._head and key <= self._keys[-1]:
            raise ValueError(f"key {key} is not after the last key {self._keys[-1]}")
        self._keys.append(key)
        self._values.append(value)

    def get(self, key: int) -> V | None:
        keys = self._keys
        at = bisect.bisect_left(keys, key, self._head)
        return self._values[at] if at < len(keys) and keys[at] == key else None

    def drop_through(self, key: int) -> None:
        """Forget every value whose key is ``key`` or less."""
        self._head = bisect.bisect_right(self._keys, key, self._head)
        if self._head >= _TRIM_AT and self._head * 2 >= len(self._keys):
            # New lists: views taken earlier keep reading the old ones.
            self._keys = self._keys[self._head :]
            self._values = self._values[self._head :]
            self._head = 0

    def view(self) -> IndexedView[V]:
        """O(1): no copying, whatever the size."""
        return IndexedView(self._keys, self._values, self._head, len(self._keys))


class IndexedView(Generic[V]):
    """An unchanging picture of an ``IndexedValues``; safe to read from any thread."""

    __slots__ = ("_end", "_head", "_keys", "_values")

    def __init__(self, keys: list[int], values: list[V], head: int, end: int) -> None:
        self._keys, self._values, self._head, self._end = keys, values, head, end

    def __len__(self) -> int:
        return self._end - self._head

    def item_chunks(self, size: int) -> Iterator[list[tuple[int, V]]]:
        """The items in key order, ``size`` at a time."""
        keys, values = self._keys, self._values
        for start in range(self._head, self._end, size):
            stop = min(start + size, self._end)
            yield list(zip(keys[start:stop], values[start:stop], strict=True))
