"""Follower-side assembly of a chunked InstallSnapshot transfer.

A transfer is identified by the sending leader, its term and the snapshot's metadata. Chunks
must arrive in byte order: a chunk that starts past what has been received is refused (the
leader then resends from the offset the follower reports), a chunk already received is
ignored, and a first chunk of a different snapshot (or from a different leader or term)
discards whatever was half assembled and starts over; a later chunk of a transfer the
follower has not seen start is refused with offset 0, so its sender restarts it. Nothing
is stored until the last chunk arrives; a crash simply loses the partial transfer.
"""

from __future__ import annotations

from dataclasses import dataclass

from raft3d.consensus.types import Message, NodeId, Snapshot, SnapshotMeta


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    received: int  # bytes of the snapshot assembled so far (the next offset wanted)
    rejected: bool  # the chunk did not fit; the leader should resend from ``received``
    snapshot: Snapshot | None  # the complete snapshot, once the last chunk arrived


class SnapshotReceiver:
    __slots__ = ("_buffer", "_key", "_meta")

    def __init__(self) -> None:
        self._key: tuple[NodeId, int, SnapshotMeta] | None = None
        self._meta: SnapshotMeta | None = None
        self._buffer = bytearray()

    def reset(self) -> None:
        self._key = None
        self._meta = None
        self._buffer = bytearray()

    def offer(self, msg: Message) -> ChunkOutcome:
        meta = msg.snapshot_meta
        assert meta is not None  # checked by the core before it gets here
        key = (msg.frm, msg.term, meta)
        if key != self._key:
            if msg.offset != 0:
                # The middle of a transfer we know nothing about (a stray from an abandoned
                # one, or its start was lost): ask for it from the start, keep our own.
                return ChunkOutcome(0, True, None)
            self._key = key
            self._meta = meta
            self._buffer = bytearray()
        received = len(self._buffer)
        if msg.offset > received:
            return ChunkOutcome(received, True, None)
        if msg.offset < received:
            return ChunkOutcome(received, False, None)  # duplicate; already have it
        self._buffer += msg.data
        if not msg.done:
            return ChunkOutcome(len(self._buffer), False, None)
        snapshot = Snapshot(meta, bytes(self._buffer))
        self.reset()
        return ChunkOutcome(len(snapshot.data), False, snapshot)
