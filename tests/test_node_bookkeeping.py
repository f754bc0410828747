"""Direct tests of the node's synchronous bookkeeping: proposals, read barriers, and the
per-Ready decisions (``raft3d.node.ready``) that the driver and the simulation share."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from raft3d.consensus.types import (
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    ReadState,
    Ready,
    Snapshot,
    SnapshotData,
    SnapshotMeta,
)
from raft3d.node.errors import OutcomeUnknownError
from raft3d.node.proposals import Proposals
from raft3d.node.reads import ReadBarriers
from raft3d.node.ready import ReadyStep
from tests.support.machines import EagerCapture, KeptOutcomes


class Waiter:
    """A minimal ``raft3d.node.seams.Waiter``."""

    def __init__(self) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.finished = False

    def done(self) -> bool:
        return self.finished

    def set_result(self, result: object, /) -> None:
        assert not self.finished
        self.result, self.finished = result, True

    def set_exception(self, exception: BaseException, /) -> None:
        assert not self.finished
        self.error, self.finished = exception, True


def counts() -> dict[str, int]:
    return {"committed": 0, "outcome_unknown": 0}


# --- proposals -------------------------------------------------------------------------------


def test_a_proposal_gets_the_result_of_its_own_entry() -> None:
    tally = counts()
    proposals: Proposals[str] = Proposals(tally)
    w = Waiter()
    proposals.add(5, 2, w)
    proposals.applied(4, 2, "not mine")
    assert not w.done()
    proposals.applied(5, 2, "mine")
    assert w.result == "mine"
    assert 5 not in proposals
    assert tally == {"committed": 1, "outcome_unknown": 0}


def test_another_leaders_entry_at_the_index_makes_the_outcome_unknown() -> None:
    tally = counts()
    proposals: Proposals[str] = Proposals(tally)
    replaced_by_entry, replaced_by_noop = Waiter(), Waiter()
    proposals.add(5, 2, replaced_by_entry)
    proposals.add(6, 2, replaced_by_noop)
    proposals.applied(5, 3, "someone else's")
    proposals.replaced(6)
    for w, index in ((replaced_by_entry, 5), (replaced_by_noop, 6)):
        assert isinstance(w.error, OutcomeUnknownError)
        assert (w.error.index, w.error.term) == (index, 2)
    assert tally == {"committed": 0, "outcome_unknown": 2}


def test_ending_a_term_fails_its_proposals_but_keeps_those_of_the_kept_term() -> None:
    tally = counts()
    proposals: Proposals[str] = Proposals(tally)
    old, current = Waiter(), Waiter()
    proposals.add(3, 1, old)
    proposals.add(4, 2, current)
    proposals.fail(keep_term=2)
    assert isinstance(old.error, OutcomeUnknownError)
    assert not current.done()
    proposals.fail()
    assert isinstance(current.error, OutcomeUnknownError)
    assert len(proposals) == 0
    assert tally["outcome_unknown"] == 2


def test_a_forgotten_proposal_is_not_answered_and_a_newer_waiter_is_kept() -> None:
    proposals: Proposals[str] = Proposals(counts())
    gone, newer = Waiter(), Waiter()
    proposals.add(7, 1, gone)
    proposals.forget(7, gone)
    assert 7 not in proposals
    proposals.add(7, 2, newer)
    proposals.forget(7, gone)  # a stale forget must not drop the newer waiter
    proposals.applied(7, 2, "ok")
    assert newer.result == "ok" and not gone.done()


# --- read barriers ---------------------------------------------------------------------------


def test_waiters_arriving_together_share_one_read_index_and_wait_for_apply() -> None:
    reads = ReadBarriers(retry_after=1.0, context_prefix=b"n1.")
    asked: list[bytes] = []
    first, second = Waiter(), Waiter()
    reads.add(first)
    reads.add(second)
    reads.issue(0.0, asked.append)
    assert len(asked) == 1 and asked[0].startswith(b"n1.")
    reads.issue(0.5, asked.append)  # nothing new, nothing overdue
    assert len(asked) == 1
    reads.confirmed(ReadState(9, asked[0]))
    reads.release(8)
    assert not first.done()
    reads.release(9)
    assert first.result == second.result == 9
    assert len(reads) == 0


def test_an_unanswered_read_is_asked_again_and_a_late_answer_is_ignored() -> None:
    reads = ReadBarriers(retry_after=1.0)
    asked: list[bytes] = []
    w = Waiter()
    reads.add(w)
    reads.issue(0.0, asked.append)
    reads.issue(1.5, asked.append)
    assert len(asked) == 2 and asked[0] != asked[1]
    reads.confirmed(ReadState(3, asked[0]))  # the first request's answer, too late
    reads.release(100)
    assert not w.done()
    reads.confirmed(ReadState(4, asked[1]))
    reads.release(100)
    assert w.result == 4


def test_contexts_of_different_prefixes_never_collide() -> None:
    a, b = ReadBarriers(1.0, b"a.1."), ReadBarriers(1.0, b"a.2.")
    asked: list[bytes] = []
    for reads in (a, b):
        reads.add(Waiter())
        reads.issue(0.0, asked.append)
    assert asked[0] != asked[1]


def test_failing_reads_fails_every_stage() -> None:
    reads = ReadBarriers(retry_after=1.0)
    asked: list[bytes] = []
    waiting_apply, issued, unissued = Waiter(), Waiter(), Waiter()
    reads.add(waiting_apply)
    reads.issue(0.0, asked.append)
    reads.confirmed(ReadState(50, asked[0]))
    reads.add(issued)
    reads.issue(0.1, asked.append)
    reads.add(unissued)
    boom = RuntimeError("stopping")
    reads.fail(boom)
    assert waiting_apply.error is issued.error is unissued.error is boom


# --- per-Ready decisions ---------------------------------------------------------------------


class Recorder(KeptOutcomes[str]):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[tuple[int, bytes]] = []
        self.restored: list[bytes] = []

    def apply(self, index: int, data: bytes) -> str:
        self.applied.append((index, data))
        return self.keep(index, f"r{index}")

    def capture(self) -> EagerCapture:
        return EagerCapture(b"state")

    def restore(self, data: bytes) -> None:
        self.restored.append(data)

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # one step: a small state
        self.restore(data[0 : len(data)])


def make_step(threshold: int = 0, durable: HardState | None = None) -> ReadyStep[str]:
    return ReadyStep(
        Recorder(),
        durable=durable or HardState(1, "a", 0),
        applied=0,
        snapshot_threshold=threshold,
        read_retry=1.0,
    )


def msg(mtype: MsgType) -> Message:
    return Message(mtype, "b", "a", 1)


def test_a_commit_only_change_is_not_written_but_rides_with_the_next_write() -> None:
    step = make_step()
    plan = step.plan(Ready(hard_state=HardState(1, "a", 3)))
    assert plan.write is None
    assert step.unwritten_hard_state() == HardState(1, "a", 3)
    entries = [Entry(4, 1, b"x")]
    plan = step.plan(Ready(entries=entries))
    assert plan.write is not None
    assert plan.write.hard_state == HardState(1, "a", 3)
    assert plan.write.entries == entries
    step.written(plan)
    assert step.durable == HardState(1, "a", 3)
    assert step.unwritten_hard_state() is None


def test_a_new_term_or_vote_is_written_before_replies_go_out() -> None:
    step = make_step()
    vote = HardState(2, "c", 0)
    rd = Ready(hard_state=vote, messages=[msg(MsgType.VOTE_RESP), msg(MsgType.APP)])
    plan = step.plan(rd)
    assert plan.write is not None and plan.write.hard_state == vote
    assert [m.type for m in plan.early] == [MsgType.APP]
    assert [m.type for m in plan.late] == [MsgType.VOTE_RESP]


def test_acks_that_promise_nothing_about_the_disk_go_early_unless_asked_not_to() -> None:
    step = make_step()
    rd = Ready(
        entries=[Entry(1, 1, b"x")],
        messages=[msg(MsgType.HEARTBEAT_RESP), msg(MsgType.APP_RESP)],
    )
    plan = step.plan(rd)
    assert [m.type for m in plan.early] == [MsgType.HEARTBEAT_RESP]
    assert [m.type for m in plan.late] == [MsgType.APP_RESP]
    held = step.plan(rd, early_send=False)
    assert held.early == [] and len(held.late) == 2


def test_finish_applies_answers_proposals_and_releases_reads() -> None:
    step = make_step()
    proposal, read = Waiter(), Waiter()
    step.proposals.add(2, 1, proposal)
    step.reads.add(read)
    asked: list[bytes] = []
    step.reads.issue(0.0, asked.append)
    rd = Ready(
        committed_entries=[Entry(1, 1, b"", EntryType.NOOP), Entry(2, 1, b"put")],
        read_states=[ReadState(2, asked[0])],
    )
    step.finish(rd)
    assert step.applied == 2
    assert proposal.result == "r2"
    assert read.result == 2
    assert (step.outcome(1), step.outcome(2)) == (None, "r2")
    assert step.counters.applied_entries == 2


def test_an_installed_snapshot_replaces_the_state_and_its_outcomes() -> None:
    step = make_step()
    step.finish(Ready(committed_entries=[Entry(1, 1, b"a")]))
    snap = Snapshot(SnapshotMeta(10, 2, ("a", "b", "c")), b"leader state")
    step.finish(Ready(snapshot=snap, committed_entries=[Entry(10, 2, b"covered")]))
    assert step.applied == step.snapshot_index == 10
    assert step.outcome(1) is None


@pytest.mark.parametrize(("applied", "due"), [(4, False), (5, True)])
def test_a_snapshot_is_due_after_threshold_applied_entries(applied: int, due: bool) -> None:
    step = make_step(threshold=5)
    step.finish(Ready(committed_entries=[Entry(i, 1, b"x") for i in range(1, applied + 1)]))
    assert step.snapshot_due() is due


def test_no_snapshot_point_while_the_core_holds_a_newer_snapshot() -> None:
    step = make_step(threshold=1)
    step.finish(Ready(committed_entries=[Entry(1, 1, b"x"), Entry(2, 1, b"y")]))
    assert step.snapshot_point(core_snapshot_index=5) is None
    assert step.snapshot_point(core_snapshot_index=0) == 2
    assert step.outcome(2) == "r2"
    step.compacted(2, first_index=2)  # the log keeps entry 2: so does its outcome
    assert step.outcome(2) == "r2" and step.outcome(1) is None
    step.compacted(2, first_index=3)
    assert step.outcome(2) is None
    assert step.snapshot_point(core_snapshot_index=2) is None  # nothing applied since
