"""The chaos run in CI: a fixed seed, real processes, real faults, every check.

The main run has snapshots off: with them, the event log check finds the known bug of
issue 8 (``GET /api/v1/events`` shows committed commands with ``"outcome": null`` while a
node's snapshot is being saved). The second run has snapshots on (and kills followers during
InstallSnapshot); it is expected to find exactly that bug and nothing else, and fails the
suite the moment it stops finding it, so that the marker goes once the fix lands.
"""

from __future__ import annotations

from collections import Counter

from .history import OK
from .runner import RunConfig, RunReport, run

CI_SEED = 20261201
OUTCOMES_CHECK = "every committed command has its outcome (SPEC §7)"


def _assert_it_did_something(report: RunReport) -> None:
    acked = sum(op.outcome == OK for op in report.history.writes)
    reads = sum(r.status == 200 for r in report.history.reads)
    kinds = Counter(f.kind for f in report.history.faults)
    assert acked >= 50 and reads >= 50, report.summary()
    assert len(kinds) >= 3 and sum(kinds.values()) >= 6, report.summary()


def test_a_chaos_run_finds_no_anomaly() -> None:
    config = RunConfig(seed=CI_SEED, duration=60, snapshot_threshold=0)
    report = run(config)
    print(report.summary())
    assert report.ok, report.summary()
    _assert_it_did_something(report)


def test_a_chaos_run_with_snapshots_finds_no_anomaly() -> None:
    # Issue 8 made this find null outcomes around snapshots; outcomes now live as long as
    # their entries, on every node.
    config = RunConfig(seed=CI_SEED + 1, duration=30)
    report = run(config)
    print(report.summary())
    assert not report.error and report.checks, report.summary()
    _assert_it_did_something(report)
    assert any(f.kind == "snapshot_kill" for f in report.history.faults), report.summary()
    assert report.ok, report.summary()


MEMBERSHIP_KINDS = {"transfer", "learner", "readd"}
MEMBERSHIP_DONE = ("->", "learner promoted", "a voter again")


def test_a_chaos_run_with_membership_changes_finds_no_anomaly() -> None:
    # Leadership moves, a learner joins and is promoted, a follower is removed and comes
    # back with an empty data dir, between the other faults (snapshots on: the re-added
    # node catches up by InstallSnapshot once the log is compacted).
    config = RunConfig(seed=CI_SEED + 2, duration=30, membership=True)
    report = run(config)
    print(report.summary())
    assert not report.error and report.checks, report.summary()
    _assert_it_did_something(report)
    changes = [f for f in report.history.faults if f.kind in MEMBERSHIP_KINDS]
    print("\n".join(f"{f.kind}: {f.detail}" for f in report.history.faults))
    assert any(any(done in f.detail for done in MEMBERSHIP_DONE) for f in changes), [
        (f.kind, f.detail) for f in changes
    ]
    assert report.ok, report.summary()
