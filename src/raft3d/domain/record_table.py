"""Farm objects in creation order, found by id without keeping the id a second time.

Why: a node holds its whole farm in memory. Stored as one ``bytes`` per object (its snapshot
bytes, ``raft3d.domain.records``) in an ``immutables.Map`` keyed by id, beside a list of the
ids in creation order, a million objects took about 300 MB for a 109 MB snapshot: 144 MB of
record bytes, 56 MB of id strings (each id is also inside its record), 65 MB of trie nodes
and 8 MB of order list. With the interpreter and what a write load adds, a node held 3.4-3.5
times its snapshot (the target is 3).

So a ``RecordTable`` keeps only the records, and finds them by a hash index that holds no key:

- *records*, by position (creation order), in tuples of ``CHUNK`` (64): the full ones in a
  list, the last, partial one in a list of its own. Replacing a record builds a new tuple
  for its chunk (64 pointers copied); appending fills the tail. A frozen view
  (``RecordsView``) shares the chunk list and copies the tail (at most 63 pointers): O(1).
  The first change to the chunk list after a view was taken copies the list (one pointer
  per 64 records: 15,600 at a million objects, some 20 µs) and never touches the view's.
- *the index*, extendible hashing: a directory of ``2**depth`` buckets, each a ``bytearray``
  of its local depth (one byte) and entries of the key's 64-bit hash and the record's
  position (``_ENTRY``), split in two when it reaches ``BUCKET`` entries, the directory
  doubled (a C list copy) when a bucket as deep as it splits. Every step is bounded: no
  rehash of the whole table ever. A lookup searches one bucket (``bytearray.find``, in C)
  and confirms a hash match against the id inside the record (``ID_AT``).

About 16 B per object for the index and 8 for its slot in a chunk, against about 130 B for
an id string, its trie entry and its order-list slot. And the collector has next to nothing
to walk: ``bytes``, ``bytearray`` and tuples of bytes are not tracked (the trie's nodes and
arrays are), so a full collection no longer grows with the farm.

Records are never removed (nothing in the domain deletes an object). The hash is Python's
``hash(str)``: it differs between processes, and nothing of the index leaves the process, so
replicas still agree on everything they compare (the records and their order).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator

import msgpack

CHUNK = 64  # records per chunk tuple (a power of two: positions split with shifts)
_SHIFT = CHUNK.bit_length() - 1
_LOW = CHUNK - 1
BUCKET = 32  # index entries per bucket before it splits
_ENTRY = struct.Struct("<QI")  # hash, position
_HASH = struct.Struct("<Q")
_WIDTH = _ENTRY.size
_MASK64 = (1 << 64) - 1
# A record is a msgpack map (a fixmap: at most 15 fields) whose first field is "id": one
# header byte, the packed key "id" (3 bytes), then the packed id.
ID_AT = 4
_ID_FIELD = b"\xa2id"
_pack = msgpack.Packer(use_bin_type=True).pack
_hash = hash  # a seam: tests make every key collide


def packed_id(key: str) -> bytes:
    """The id as it appears at ``ID_AT`` in its record."""
    return _pack(key)  # type: ignore[no-any-return]


def record_id_is(raw: bytes, key: str) -> bool:
    """Whether ``raw`` is a record laid out as the index needs (fixmap, "id" first) for ``key``."""
    return (
        raw[0] & 0xF0 == 0x80
        and raw[1:ID_AT] == _ID_FIELD
        and raw.startswith(packed_id(key), ID_AT)
    )


class RecordsView:
    """An unchanging picture of a ``RecordTable``'s records; safe to read from any thread."""

    __slots__ = ("_chunks", "_full", "_size", "_tail")

    def __init__(self, chunks: list[tuple[bytes, ...]], tail: tuple[bytes, ...]) -> None:
        self._chunks, self._tail = chunks, tail
        self._full = len(chunks)  # the list may grow later: this view ends here
        self._size = self._full * CHUNK + len(tail)

    def __len__(self) -> int:
        return self._size

    def at(self, index: int) -> bytes:
        """The record at ``index`` in creation order (negative counts from the end)."""
        if not -self._size <= index < self._size:
            raise IndexError("view index out of range")
        index %= self._size
        chunk = index >> _SHIFT
        if chunk < self._full:
            return self._chunks[chunk][index & _LOW]
        return self._tail[index & _LOW]

    def _pieces(self) -> Iterator[tuple[bytes, ...]]:
        yield from itertools.islice(self._chunks, self._full)
        yield self._tail

    def values(self) -> Iterator[bytes]:
        return itertools.chain.from_iterable(self._pieces())

    def slice_values(self, part: slice) -> list[bytes]:
        """The records of ``part`` of the creation order, looked up only for that part."""
        return [self.at(i) for i in range(*part.indices(self._size))]

    def chunks(self, size: int) -> Iterator[list[bytes]]:
        """The records in creation order, about ``size`` (at least ``CHUNK``) at a time."""
        step = max(1, size // CHUNK)
        for start in range(0, self._full, step):
            stop = min(start + step, self._full)
            yield list(itertools.chain.from_iterable(self._chunks[start:stop]))
        if self._tail:
            yield list(self._tail)


class RecordTable:
    """Records by id, in creation order; see the module docstring. Not thread-safe: views
    are what other threads read."""

    __slots__ = ("_chunks", "_depth", "_directory", "_mask", "_shared", "_size", "_tail")

    # A bucket: ``bytearray([local depth])`` then its entries, ``_ENTRY`` each.

    def __init__(self) -> None:
        self._chunks: list[tuple[bytes, ...]] = []
        self._tail: list[bytes] = []
        self._size = 0
        self._shared = False  # a view holds ``_chunks``: copy it before changing it
        self._directory = [bytearray(1)]
        self._depth = 0
        self._mask = 0

    def __len__(self) -> int:
        return self._size

    def _at(self, position: int) -> bytes:
        chunk = position >> _SHIFT
        if chunk < len(self._chunks):
            return self._chunks[chunk][position & _LOW]
        return self._tail[position & _LOW]

    def _find(self, key: str, hashed: int) -> int:
        bucket = self._directory[hashed & self._mask]
        pattern = _HASH.pack(hashed)
        found = bucket.find(pattern, 1)
        want = None
        while found > 0:
            if (found - 1) % _WIDTH == 0:  # an entry's hash, not bytes across two entries
                position: int = _ENTRY.unpack_from(bucket, found)[1]
                want = want or packed_id(key)
                if self._at(position).startswith(want, ID_AT):
                    return position
            found = bucket.find(pattern, found + 1)
        return -1

    def __contains__(self, key: str) -> bool:
        return self._find(key, _hash(key) & _MASK64) >= 0

    def get(self, key: str) -> bytes | None:
        position = self._find(key, _hash(key) & _MASK64)
        return None if position < 0 else self._at(position)

    def __getitem__(self, key: str) -> bytes:
        position = self._find(key, _hash(key) & _MASK64)
        if position < 0:
            raise KeyError(key)
        return self._at(position)

    def put(self, key: str, raw: bytes) -> None:
        """Insert ``raw`` (at the end of the order) or replace ``key``'s record in place."""
        hashed = _hash(key) & _MASK64
        position = self._find(key, hashed)
        if position < 0:
            self._append(key, raw, hashed)
        else:
            self._replace(position, key, raw)

    def add(self, key: str, raw: bytes) -> bool:
        """Insert ``raw`` at the end of the order; False (adding nothing) if ``key`` is in."""
        hashed = _hash(key) & _MASK64
        if self._find(key, hashed) >= 0:
            return False
        self._append(key, raw, hashed)
        return True

    def view(self) -> RecordsView:
        """O(1): the chunk list is shared (copied on the next change), the tail copied."""
        self._shared = True
        return RecordsView(self._chunks, tuple(self._tail))

    def _own_chunks(self) -> list[tuple[bytes, ...]]:
        if self._shared:
            self._chunks = list(self._chunks)
            self._shared = False
        return self._chunks

    def _replace(self, position: int, key: str, raw: bytes) -> None:
        _check(raw, key)
        chunk, offset = position >> _SHIFT, position & _LOW
        if chunk < len(self._chunks):
            chunks = self._own_chunks()
            old = chunks[chunk]
            chunks[chunk] = (*old[:offset], raw, *old[offset + 1 :])
        else:
            self._tail[offset] = raw  # views hold copies of the tail

    def _append(self, key: str, raw: bytes, hashed: int) -> None:
        _check(raw, key)
        position = self._size
        self._tail.append(raw)
        if len(self._tail) == CHUNK:
            self._own_chunks().append(tuple(self._tail))
            self._tail = []
        self._size += 1
        self._index_add(hashed, position)

    def _index_add(self, hashed: int, position: int) -> None:
        while True:
            bucket = self._directory[hashed & self._mask]
            full = len(bucket) >= 1 + BUCKET * _WIDTH
            if full and bucket[0] == self._depth and len(self._directory) > self._size:
                full = False  # skewed hashes: let this bucket grow rather than the directory
            if not full:
                bucket += _ENTRY.pack(hashed, position)
                return
            self._split(bucket, hashed)

    def _split(self, bucket: bytearray, hashed: int) -> None:
        depth = bucket[0]
        if depth == self._depth:
            self._directory = self._directory + self._directory
            self._depth += 1
            self._mask = (1 << self._depth) - 1
        bit = 1 << depth
        low, high = bytearray((depth + 1,)), bytearray((depth + 1,))
        for entry in _ENTRY.iter_unpack(memoryview(bucket)[1:]):
            (high if entry[0] & bit else low).extend(_ENTRY.pack(*entry))
        directory = self._directory
        for slot in range(hashed & (bit - 1), len(directory), bit):
            directory[slot] = high if slot & bit else low


def _check(raw: bytes, key: str) -> None:
    if not record_id_is(raw, key):
        raise ValueError(f"record for {key!r} does not start with its id")
