"""Farm objects stored as their snapshot bytes: compact in memory, copied into snapshots.

Why: a node holds its whole farm in memory, a million objects in the large-farm benchmark.
As Python objects (a slotted dataclass, its strings, an enum member) an object took about
730 B (measured at 200k objects; a node held 9-11 times its snapshot's size); and encoding a
snapshot meant building a dict and packing it for every object, seconds of CPU at that size
on a thread that held the GIL the event loop needs. Stored as bytes: about 280 B.

So each object is kept as one ``bytes``: exactly the msgpack map a snapshot holds for it
(``msgpack.packb(obj.to_dict())``). One object per record instead of eight or so; ``bytes``
and ``str`` are not tracked by the cyclic collector; and a snapshot's object arrays are the
stored bytes joined in creation order (``RecordsView.chunks``), C-speed copying in short
slices instead of per-object Python work. The records are found by the id inside them, no
separate key kept (``raft3d.domain.record_table``: about 200 B per object in all). The
snapshot format is unchanged: old snapshots load as before, new ones are byte-for-byte what
the old encoder wrote.

Reads decode on access (a few microseconds per object); a write encodes once. Lists are
``RecordSequence``: frozen, decoding only the slice asked for, so a paginated or sliced
list of a big farm never decodes the whole farm at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar, overload

import msgpack

from raft3d.domain.model import Filament, FilamentType, JobStatus, Printer, PrintJob
from raft3d.domain.record_table import RecordsView, RecordTable

_packb = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb


class Record(Protocol):
    @property
    def id(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=Record)
Decoder = Callable[[bytes], T]


def encode_record(obj: Record) -> bytes:
    """The bytes a snapshot holds for ``obj`` (and what ``Records`` stores)."""
    return _packb(obj.to_dict())  # type: ignore[no-any-return]


def decode_printer(raw: bytes) -> Printer:
    d = _unpackb(raw)
    return Printer(d["id"], d["company"], d["model"])


_FILAMENT_TYPES = {t.value: t for t in FilamentType}
_STATUSES = {s.value: s for s in JobStatus}


def decode_filament(raw: bytes) -> Filament:
    d = _unpackb(raw)
    return Filament(
        d["id"],
        _FILAMENT_TYPES[d["type"]],
        d["color"],
        d["total_weight_in_grams"],
        d["remaining_weight_in_grams"],
    )


def decode_print_job(raw: bytes) -> PrintJob:
    d = _unpackb(raw)
    return PrintJob(
        d["id"],
        d["printer_id"],
        d["filament_id"],
        d["filepath"],
        d["print_weight_in_grams"],
        _STATUSES[d["status"]],
    )


class Records(Generic[T]):
    """Objects by id in creation order, each kept as its encoded bytes (see module doc).

    Only bytes this module encoded (or a snapshot decoder checked and re-encoded) go in,
    so decoding trusts them.
    """

    __slots__ = ("_decode", "_map")

    def __init__(self, decode: Decoder[T]) -> None:
        self._decode = decode
        self._map = RecordTable()

    @classmethod
    def built(cls, decode: Decoder[T], encoded: RecordTable) -> Records[T]:
        """Records over already encoded (and checked) objects, as a restore builds them."""
        records = cls(decode)
        records._map = encoded
        return records

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: str) -> bool:
        return key in self._map

    def get(self, key: str) -> T | None:
        raw = self._map.get(key)
        return None if raw is None else self._decode(raw)

    def __getitem__(self, key: str) -> T:
        return self._decode(self._map[key])

    def put(self, obj: T) -> None:
        """Insert (at the end of the order) or replace (keeping its place) ``obj``."""
        self._map.put(obj.id, encode_record(obj))

    def put_encoded(self, key: str, raw: bytes) -> None:
        self._map.put(key, raw)

    def values(self) -> RecordSequence[T]:
        """Every object now, in creation order: frozen, decoded as it is read."""
        return RecordSequence(self._map.view(), self._decode)

    def view(self) -> RecordsView:
        """O(1) frozen picture of the encoded records, for snapshots."""
        return self._map.view()


class RecordSequence(Sequence[T]):
    """A frozen list of records that decodes only the items it is asked for.

    Compares equal to any sequence holding the same objects (a list, for instance).
    """

    __slots__ = ("_decode", "_view")

    def __init__(self, view: RecordsView, decode: Decoder[T]) -> None:
        self._view = view
        self._decode = decode

    def __len__(self) -> int:
        return len(self._view)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._decode(raw) for raw in self._view.slice_values(index)]
        return self._decode(self._view.at(index))

    def __iter__(self) -> Iterator[T]:
        decode = self._decode
        for raw in self._view.values():
            yield decode(raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordSequence({list(self)!r})"
