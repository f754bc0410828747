"""``DurableStorage`` against its model (``tests.support.storage_model``): random call
sequences with reopens must stay equivalent."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raft3d.consensus.types import Entry, HardState, Snapshot
from raft3d.storage import DurableStorage
from tests.support.durable import (
    make_snapshot,
)
from tests.support.storage_model import StorageModel

# Model-based: random call sequences with reopens ----------------------------------------


class StorageAgainstModel(RuleBasedStateMachine):
    """Random valid calls applied to the storage and to the model must stay equivalent."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="raft3d-storage-"))
        self.storage = DurableStorage(self.dir / "node", snapshots_keep=2)
        self.model = StorageModel()
        self.term = 1

    def teardown(self) -> None:
        self.storage.close()
        shutil.rmtree(self.dir)

    @rule(count=st.integers(1, 12), data=st.binary(max_size=40))
    def append(self, count: int, data: bytes) -> None:
        first = self.model.last_index + 1
        batch = [Entry(i, self.term, data) for i in range(first, first + count)]
        self._persist(HardState(self.term, "n1", self.model.hard_state.commit), batch)

    @precondition(lambda self: self.model.last_index > self.model.base_index)
    @rule(back=st.integers(0, 20), count=st.integers(1, 5))
    def overwrite(self, back: int, count: int) -> None:
        self.term += 1
        first = max(self.model.base_index + 1, self.model.last_index + 1 - back)
        batch = [Entry(i, self.term, b"o") for i in range(first, first + count)]
        self._persist(HardState(self.term, "n2", 0), batch)

    @precondition(lambda self: self.model.last_index > self.model.base_index)
    @rule(pick=st.integers(0, 1000))
    def local_snapshot(self, pick: int) -> None:
        span = self.model.last_index - self.model.base_index
        index = self.model.base_index + 1 + pick % span
        snap = make_snapshot(index, self.model.term_at(index))
        self.storage.save_local_snapshot(snap)
        self.model.save_local_snapshot(snap)

    @rule(ahead=st.integers(-5, 10), follow=st.integers(0, 3))
    def received_snapshot(self, ahead: int, follow: int) -> None:
        self.term += 1
        index = max(self.model.base_index + 1, self.model.last_index + ahead)
        batch = [Entry(i, self.term, b"f") for i in range(index + 1, index + 1 + follow)]
        self._persist(HardState(self.term, None, index), batch, make_snapshot(index, self.term))

    @rule()
    def reopen(self) -> None:
        self.storage.close()
        self.storage = DurableStorage(self.dir / "node", snapshots_keep=2)
        assert StorageModel.read_from(self.storage).digest() == self.model.digest()

    @invariant()
    def same_observable_state(self) -> None:
        assert self.storage.first_index() == self.model.base_index + 1
        assert self.storage.last_index() == self.model.last_index
        assert self.storage.read_entries(0, 1 << 30) == self.model.entries
        assert self.storage.latest_snapshot() == self.model.snapshot
        assert len(self.storage.list_snapshots()) <= 2

    def _persist(
        self,
        hard: HardState | None,
        batch: list[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        self.storage.persist(hard, batch, snapshot)
        self.model.persist(hard, batch, snapshot)


StorageAgainstModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_storage_matches_the_model = StorageAgainstModel.TestCase
