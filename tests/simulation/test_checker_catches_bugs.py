"""The checker must notice classic Raft bugs.

Each case plugs a deliberately broken core or storage (``mutants.py``) into the simulation and
runs the default seeds in order until the checker reports an invariant violation. The
budget is far above the seed that catches each bug today (noted per case), so harness changes
that shift the random streams do not make the test flaky, yet a checker that went blind
fails it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from raft3d.consensus import Entry, Message, MsgType, RaftCore, Ready, Role
from raft3d.node import ready

from . import mutants
from .checker import InvariantViolation
from .harness import Cluster, CoreFactory, StorageFactory, run_seed
from .sim_config import SimConfig, default_shape
from .storage import MemoryStorage
from .workload import Workload

SEED_BUDGET = 400


@dataclass(frozen=True)
class Fault:
    core: CoreFactory = RaftCore
    storage: StorageFactory = MemoryStorage
    reasons: tuple[str, ...] = ()  # the report must name one of these
    wipes: bool = False  # run the seeds with lost data directories among the faults


CASES = {
    # Restart forgets the vote: a node votes twice in one term (caught at seed 0).
    "vote-not-persisted": Fault(
        storage=mutants.ForgetsVoteStorage, reasons=("voted for both", "Election Safety")
    ),
    # Figure 8 of the Raft paper (caught at seed 6).
    "commit-previous-term-entry-by-count": Fault(
        core=mutants.CommitsOldTermByCount,
        reasons=("would vote for", "Leader Completeness", "State Machine Safety"),
    ),
    # A stale APP erases acknowledged entries (caught at seed 0).
    "follower-truncates-matching-suffix": Fault(
        core=mutants.TruncatesMatchingSuffix,
        reasons=("no longer has", "durable on only", "Leader Completeness"),
    ),
    # The leader counts its own copy before it is durable (caught at seed 37).
    "leader-counts-own-unpersisted-entry": Fault(
        core=mutants.CountsOwnUnpersistedEntries, reasons=("durable on only",)
    ),
    # Votes without the up-to-date check: a leader lacks committed entries (caught at seed 5).
    "grant-vote-to-stale-log": Fault(
        core=mutants.VotesForStaleLogs,
        reasons=("Leader Completeness", "would vote for", "State Machine Safety"),
    ),
    # Beyond the required ones: bugs of the commit index and of ReadIndex.
    "heartbeat-commit-not-capped-at-match": Fault(
        core=mutants.HeartbeatCommitsUnacknowledged,
        reasons=("committed entry", "State Machine Safety", "durable on only"),
    ),
    "read-index-before-leader-committed-in-its-term": Fault(
        core=mutants.ReadsBeforeCommittingInTerm, reasons=("linearizability",)
    ),
    # Membership (seeds with membership changes only: see harness.MEMBERSHIP_SHARE).
    # The own-term-commit rule broken (caught at seed 0).
    "change-proposed-before-leader-committed-in-its-term": Fault(
        core=mutants.ChangesBeforeCommittingInTerm, reasons=("Config change safety",)
    ),
    # A commit acknowledged by a learner instead of a voter (caught at seed 60).
    "learner-counted-in-quorum": Fault(
        core=mutants.CountsLearnersInQuorum,
        reasons=("of the voters", "Election Safety", "never committed"),
    ),
    # A change proposed while the previous one is uncommitted (caught at seed 0).
    "two-configuration-changes-in-flight": Fault(
        core=mutants.AllowsTwoChangesInFlight, reasons=("two changes in flight",)
    ),
    # The driver sleeps until the due tick: a deadline promised one tick late (seed 0).
    "ticks-until-due-one-late": Fault(
        core=mutants.SleepsThroughItsDeadline, reasons=("did more than count",)
    ),
    # Lost data directories (SimConfig.with_wipes): a wiped node votes as a blank voter
    # (caught at seed 5).
    "wiped-node-votes-at-once": Fault(
        core=mutants.WipedNodeVotesAtOnce,
        reasons=("durable on only", "Leader Completeness", "voted for both", "would vote for"),
        wipes=True,
    ),
}


def first_violation(fault: Fault) -> tuple[int, str] | None:
    for seed in range(SEED_BUDGET):
        nodes, steps = default_shape(seed)
        cfg = SimConfig.from_seed(seed, nodes, steps)
        if fault.wipes:
            cfg = cfg.with_wipes()
        try:
            run_seed(
                seed,
                nodes,
                steps,
                core_factory=fault.core,
                storage_factory=fault.storage,
                cfg=cfg,
            )
        except InvariantViolation as exc:
            return seed, str(exc)
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_catches_injected_bug(name: str) -> None:
    fault = CASES[name]
    caught = first_violation(fault)
    assert caught is not None, f"{name}: no invariant violation in {SEED_BUDGET} seeds"
    seed, report = caught
    assert any(reason in report for reason in fault.reasons), f"seed {seed}: {report}"


# --- the checker's own judgement, on hand-made situations ------------------------------------


def small_cluster() -> Cluster:
    cfg = SimConfig(seed=1, nodes=3, steps=0)
    return Cluster(cfg)


def test_two_leaders_in_one_term_are_reported() -> None:
    cluster = small_cluster()
    first, second = cluster.nodes["n1"], cluster.nodes["n2"]
    for node in (first, second):
        core = node.live_core()
        core._term = 3
        core._role = Role.LEADER
    cluster.checker.on_send(Message(MsgType.VOTE_RESP, "n1", "n3", 3))  # n1 won fairly
    cluster.checker.observe(first)
    with pytest.raises(InvariantViolation, match="Election Safety"):
        cluster.checker.observe(second)


def test_leader_without_a_majority_of_its_voters_is_reported() -> None:
    cluster = small_cluster()
    node = cluster.nodes["n1"]
    core = node.live_core()
    core._term = 3
    core._role = Role.LEADER
    cluster.checker.on_send(Message(MsgType.VOTE_RESP, "n1", "n4", 3))  # n4 is no voter
    with pytest.raises(InvariantViolation, match="not a majority of its voters"):
        cluster.checker.observe(node)


def test_diverging_applies_are_reported() -> None:
    cluster = small_cluster()
    for node in cluster.nodes.values():
        node.storage.entries = [Entry(1, 1, b"x")]
    checker = cluster.checker
    checker.ledger_terms.append(1)  # entry 1 committed under the bootstrap configuration
    checker._ledger_commit_terms.append(1)
    checker._ledger_voters.append(cluster.voters)
    checker.on_apply(cluster.nodes["n1"], Entry(1, 1, b"x"))
    with pytest.raises(InvariantViolation, match="State Machine Safety"):
        checker.on_apply(cluster.nodes["n2"], Entry(1, 1, b"y"))


def test_applying_an_entry_held_by_a_minority_is_reported() -> None:
    cluster = small_cluster()
    cluster.nodes["n1"].storage.entries = [Entry(1, 1, b"x")]
    with pytest.raises(InvariantViolation, match="never committed"):
        cluster.checker.on_apply(cluster.nodes["n1"], Entry(1, 1, b"x"))


def test_same_index_and_term_with_different_contents_is_reported() -> None:
    cluster = small_cluster()
    checker = cluster.checker
    for name, data in (("n1", b"x"), ("n2", b"y")):
        node = cluster.nodes[name]
        core = node.live_core()
        core._term = 1
        core._log.append(Entry(1, 1, data))
        rd = Ready(entries=[Entry(1, 1, data)])
        if name == "n1":
            checker.on_ready(node, rd)
        else:
            with pytest.raises(InvariantViolation, match="Log Matching"):
                checker.on_ready(node, rd)


def test_stale_read_is_reported() -> None:
    workload = Workload()
    workload.write().set_result(7)  # a write acknowledged at index 7
    read = workload.read("n2")
    with pytest.raises(InvariantViolation, match="linearizability"):
        read.set_result(6)


def test_checker_catches_acks_and_votes_sent_before_they_are_durable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The driver may send some messages before a Ready's writes are durable
    # (``raft3d.consensus.sending``). Widening that rule to every message must be caught.
    monkeypatch.setattr(ready, "sendable_before_persist", lambda rd, durable: frozenset(MsgType))
    caught = first_violation(Fault())
    assert caught is not None, f"no invariant violation in {SEED_BUDGET} seeds"
    seed, report = caught
    reasons = ("durable on only", "voted for both", "no longer has", "Election Safety")
    assert any(reason in report for reason in reasons), f"seed {seed}: {report}"


def test_a_volatile_commit_index_lets_a_restart_fall_below_what_was_applied() -> None:
    """The node driver leaves a commit-only change of the hard state unwritten (Raft's commit
    index is volatile), so a node may apply entries whose commit index is not durable and
    come back from a crash below them. The simulation writes every commit change
    (``SimConfig.sync_commit``); with the driver's own policy the checker reports it."""
    seed, nodes, steps = 1, 5, 200
    cfg = replace(SimConfig.from_seed(seed, nodes, steps), sync_commit=False)
    with pytest.raises(InvariantViolation, match=r"restarted with commit .* below"):
        run_seed(seed, nodes, steps, cfg=cfg)
