"""The trivial replicated state machine of the simulation: the applied entries themselves."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import msgpack

from raft3d.consensus import Entry
from raft3d.consensus.types import SnapshotData

if TYPE_CHECKING:
    from .harness import Cluster
    from .sim_node import SimNode


class SimStateMachine:
    """Every applied entry's term and payload, in index order (NOOPs included with an empty
    payload, so position k holds index k + 1), plus a running digest of the payloads."""

    __slots__ = ("_digest", "payloads", "terms")

    def __init__(self, terms: list[int] | None = None, payloads: list[bytes] | None = None):
        self.terms: list[int] = terms if terms is not None else []
        self.payloads: list[bytes] = payloads if payloads is not None else []
        self._digest = hashlib.blake2b(digest_size=16)
        for payload in self.payloads:
            self._digest.update(payload)

    @property
    def applied_index(self) -> int:
        return len(self.terms)

    def apply(self, entry: Entry) -> None:
        if entry.index != len(self.terms) + 1:
            raise AssertionError(
                f"applied index {entry.index} out of order (state is at {len(self.terms)})"
            )
        self.terms.append(entry.term)
        self.payloads.append(entry.data)
        self._digest.update(entry.data)

    def digest(self) -> str:
        return self._digest.hexdigest()

    def snapshot_bytes(self) -> bytes:
        return msgpack.packb([self.terms, self.payloads], use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def from_snapshot(cls, data: bytes) -> SimStateMachine:
        terms, payloads = msgpack.unpackb(data, raw=False, use_list=True)
        return cls(list(terms), list(payloads))


class _Captured:
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def encode(self) -> bytes:
        return self._data

    def parts(self) -> Iterator[bytes]:
        yield self._data


class SimApp:
    """The node's ``StateMachine[int]`` (``raft3d.node.seams``), as ``ReadyStep`` sees it.

    Applying answers with the index (what a proposer is told); the simulated state itself
    (``SimNode.sm``, which records terms too) is updated by the step's ``on_apply`` hook, so
    no-ops are recorded as well.
    """

    __slots__ = ("_cluster", "_node")

    def __init__(self, cluster: Cluster, node: SimNode) -> None:
        self._cluster = cluster
        self._node = node

    def apply(self, index: int, data: bytes) -> int:
        return index

    def capture(self) -> _Captured:
        return _Captured(self._node.sm.snapshot_bytes())

    def outcome(self, index: int) -> int | None:
        return index if index <= self._node.sm.applied_index else None

    def forget_outcomes(self, through: int) -> None:
        pass  # an outcome is its index: nothing is kept

    def restore(self, data: bytes) -> None:
        self._cluster.restored(self._node, data)

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # one step: a small state
        self.restore(data[0 : len(data)])
