"""What the node driver asks of a state machine beyond apply/restore, for small test machines.

Their state is tiny, so ``capture`` simply encodes at once; outcomes are kept by index until
forgotten but, unlike the farm's, are not carried in snapshots.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Generic, TypeVar

from raft3d.consensus.types import SnapshotData

R = TypeVar("R")


class EagerCapture:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def encode(self) -> bytes:
        return self._data

    def parts(self) -> Iterator[bytes]:
        yield self._data


class KeptOutcomes(Generic[R]):
    def __init__(self) -> None:
        self.outcomes: dict[int, R] = {}

    def keep(self, index: int, outcome: R) -> R:
        self.outcomes[index] = outcome
        return outcome

    def outcome(self, index: int) -> R | None:
        return self.outcomes.get(index)

    def forget_outcomes(self, through: int) -> None:
        for index in [i for i in self.outcomes if i <= through]:
            del self.outcomes[index]


class Register(KeptOutcomes[int]):
    """Holds one integer: each command is its new value (ASCII digits); returns it."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def apply(self, index: int, data: bytes) -> int:
        self.value = int(data)
        return self.keep(index, self.value)

    def capture(self) -> EagerCapture:
        return EagerCapture(str(self.value).encode())

    def restore(self, data: bytes) -> None:
        self.value = int(data)

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # one step: a small state
        self.restore(data[0 : len(data)])
