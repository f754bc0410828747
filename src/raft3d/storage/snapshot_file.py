"""The on-disk format of one snapshot file, and reading a single file (written by
``raft3d.storage.snapshot_stream``).

Layout (format version 2, integers little-endian)::

    magic        8 bytes   b"R3DSNAP\\0"
    version      u16       2
    header_len   u32       length of the JSON header that follows
    header       JSON      {"index", "term", "voters", "learners", "manual", "contexts",
                           "created_at", "data_len"} (UTF-8; "learners" and "manual", the
                           learners not promoted automatically, are absent in files written
                           before membership changes existed, "contexts" (each member's
                           opaque context, as [node id, base64] pairs sorted by node id) in
                           files written before member contexts existed; absent fields read
                           as empty)
    checksum     u32       CRC-32 over the data, continued over every byte before the
                           checksum (magic..header)
    data         data_len bytes, the state machine's opaque snapshot

Version 1 files (written before) are read too: their checksum is 32 bytes of SHA-256 over
magic..header and then the data. Version 2 puts the data first in the checksum so that a
file written as its data is produced (``raft3d.storage.snapshot_stream``) is summed as it
goes, never read back; and CRC-32 costs a third of SHA-256's CPU (19 against 65 ms for
117 MB here). The checksum is there to catch damage (a flipped byte, a torn write); a
truncated or lengthened file contradicts the size its header gives, which is checked
apart. Whoever can write the data directory could rewrite any checksum, so a cryptographic
hash bought nothing.

A file is valid only if every field parses, its size is exactly what the header announces and
the checksum matches. Anything else (a flipped byte, a truncated file) raises
``InvalidSnapshotFile``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import struct
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from raft3d.consensus.types import Contexts, Snapshot, SnapshotMeta, sort_contexts

MAGIC = b"R3DSNAP\x00"
FORMAT_VERSION = 2
PREFIX = struct.Struct("<8sHI")  # magic, version, header length
CHECKSUM = struct.Struct("<I")  # version 2: CRC-32
_V1_CHECKSUM_LEN = hashlib.sha256().digest_size
_MAX_HEADER_LEN = 1 << 20  # a header is a few hundred bytes; anything huge is garbage
_READ_CHUNK = 1 << 20
# Written data is synced to disk every this many bytes, not only by the caller's fsync at the
# end: a 117 MB file flushed by one fsync holds every log commit of the same file system
# behind it for tens of ms (ext4 commits its journal in order). Beside 117 MiB snapshots
# fsynced in one piece, log commits took 46 ms at p99.9 (55 ms at most); synced every 4 MiB,
# 24 ms (29 at most); 2.2 ms with no snapshot written (``benchmarks/snapshot_sync_bench.py``).
SYNC_EVERY_BYTES = 4 << 20


class InvalidSnapshotFile(Exception):
    """The file is not a complete, intact snapshot file."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What a listing shows about one valid snapshot file."""

    index: int
    term: int
    size: int  # bytes on disk, header included
    created_at: float  # unix seconds
    path: Path


@dataclass(frozen=True, slots=True)
class _Header:
    meta: SnapshotMeta
    created_at: float
    data_len: int
    version: int


def prefix_bytes(meta: SnapshotMeta, created_at: float, data_len: int, length: int = 0) -> bytes:
    """Magic, version, header length and the header: every byte before the checksum, at
    least ``length`` of them (the header's JSON padded with spaces, which JSON allows)."""
    header = _header_bytes(meta, created_at, data_len).ljust(length - PREFIX.size)
    return PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header


def checksum_of(data_crc: int, prefix: bytes) -> bytes:
    """The version 2 checksum field: ``data_crc`` (``zlib.crc32`` of the data) continued
    over ``prefix``."""
    return CHECKSUM.pack(zlib.crc32(prefix, data_crc))


class _Summer:
    """The checksum of a file being read, by its version: the data given chunk by chunk."""

    def __init__(self, version: int, prefix: bytes) -> None:
        self._prefix = prefix
        self._sha = hashlib.sha256(prefix) if version == 1 else None
        self._crc = 0

    def update(self, chunk: bytes) -> None:
        if self._sha is not None:
            self._sha.update(chunk)
        else:
            self._crc = zlib.crc32(chunk, self._crc)

    def digest(self) -> bytes:
        if self._sha is not None:
            return self._sha.digest()
        return checksum_of(self._crc, self._prefix)


# The widest data length the header of a streamed file has room for (20 digits).
MAX_DATA_LEN = 10**20 - 1


def _header_bytes(meta: SnapshotMeta, created_at: float, data_len: int) -> bytes:
    return json.dumps(
        {
            "index": meta.index,
            "term": meta.term,
            "voters": list(meta.voters),
            "learners": list(meta.learners),
            "manual": list(meta.manual),
            "contexts": [
                [node, base64.b64encode(context).decode("ascii")] for node, context in meta.contexts
            ],
            "created_at": created_at,
            "data_len": data_len,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def read_snapshot_file(path: Path) -> tuple[SnapshotInfo, Snapshot]:
    """Read and verify a whole snapshot file."""
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, expected, prefix = _read_header(f, size)
        data = f.read(header.data_len)
        checksum = _Summer(header.version, prefix)
        checksum.update(data)
        _check(len(data) == header.data_len and checksum.digest() == expected, "checksum mismatch")
    info = SnapshotInfo(header.meta.index, header.meta.term, size, header.created_at, path)
    return info, Snapshot(header.meta, data)


def verify_snapshot_file(path: Path) -> SnapshotInfo:
    """Verify a snapshot file without keeping its data in memory."""
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, expected, prefix = _read_header(f, size)
        checksum = _Summer(header.version, prefix)
        while chunk := f.read(_READ_CHUNK):
            checksum.update(chunk)
        _check(checksum.digest() == expected, "checksum mismatch")
    return SnapshotInfo(header.meta.index, header.meta.term, size, header.created_at, path)


class SnapshotFileData:
    """A snapshot file's data, read by byte range (``os.pread``): what a leader serves its
    laggards from (``RaftCore.serve_from``) instead of holding the snapshot in memory.

    The descriptor is opened once and held while this lives (closed when it is collected,
    or by ``close``): a file removed meanwhile (a newer snapshot replaced it) stays readable.
    The data was verified when the file was written or loaded; it is not verified again.
    """

    __slots__ = ("__weakref__", "_closer", "_fd", "_length", "_offset")

    def __init__(self, path: Path) -> None:
        with _open(path) as f:
            size = os.fstat(f.fileno()).st_size
            header, expected, prefix = _read_header(f, size)
            self._fd = os.dup(f.fileno())
        self._offset = len(prefix) + len(expected)
        self._length = header.data_len
        self._closer = weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, part: slice, /) -> bytes:
        start, stop, step = part.indices(self._length)
        if step != 1:
            raise ValueError("only contiguous byte ranges are read")
        if stop <= start:
            return b""
        data = os.pread(self._fd, stop - start, self._offset + start)
        if len(data) != stop - start:
            raise OSError(f"snapshot file shorter than its header says at {start}")
        return data

    def close(self) -> None:
        self._closer()


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InvalidSnapshotFile(f"{path}: cannot open: {exc}") from exc


def _read_header(f: BinaryIO, size: int) -> tuple[_Header, bytes, bytes]:
    """Parse the header; returns it, the stored checksum and the bytes the checksum covers."""
    raw_prefix = f.read(PREFIX.size)
    _check(len(raw_prefix) == PREFIX.size, "truncated prefix")
    magic, version, header_len = PREFIX.unpack(raw_prefix)
    _check(magic == MAGIC, "not a snapshot file (bad magic)")
    _check(version in (1, FORMAT_VERSION), f"unsupported format version {version}")
    _check(header_len <= _MAX_HEADER_LEN, "header length out of range")
    raw_header = f.read(header_len)
    _check(len(raw_header) == header_len, "truncated header")
    try:
        fields: Any = json.loads(raw_header)
    except ValueError as exc:
        raise InvalidSnapshotFile(f"header is not JSON: {exc}") from exc
    _check(isinstance(fields, dict), "header is not an object")
    index = _non_negative_int(fields.get("index"), "index")
    term = _non_negative_int(fields.get("term"), "term")
    data_len = _non_negative_int(fields.get("data_len"), "data_len")
    voters = _names(fields.get("voters"), "voters")
    learners = _names(fields.get("learners", []), "learners")
    manual = _names(fields.get("manual", []), "manual")
    contexts = _contexts(fields.get("contexts", []))
    created_at = fields.get("created_at")
    _check(type(created_at) in (int, float) and math.isfinite(created_at), "created_at malformed")
    checksum_len = _V1_CHECKSUM_LEN if version == 1 else CHECKSUM.size
    expected = f.read(checksum_len)
    _check(len(expected) == checksum_len, "truncated checksum")
    data_offset = PREFIX.size + header_len + checksum_len
    _check(
        size == data_offset + data_len,
        f"file is {size} bytes, header says {data_offset + data_len}",
    )
    meta = SnapshotMeta(index, term, voters, learners, manual, contexts)
    header = _Header(meta, float(created_at), data_len, version)
    return header, expected, raw_prefix + raw_header


def _contexts(value: object) -> Contexts:
    if not isinstance(value, list):
        raise InvalidSnapshotFile("header field contexts malformed")
    pairs: list[tuple[str, bytes]] = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], str)
        ):
            raise InvalidSnapshotFile("header field contexts malformed")
        try:
            pairs.append((item[0], base64.b64decode(item[1], validate=True)))
        except (ValueError, binascii.Error) as exc:
            raise InvalidSnapshotFile("header field contexts malformed") from exc
    _check(
        len({node for node, _ in pairs}) == len(pairs), "header field contexts names a node twice"
    )
    return sort_contexts(pairs)


def _names(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSnapshotFile(f"header field {name} malformed")
    return tuple(value)


def _non_negative_int(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise InvalidSnapshotFile(f"header field {name} malformed")
    return value


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise InvalidSnapshotFile(reason)
