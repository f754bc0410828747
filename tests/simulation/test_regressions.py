"""Seeds that once exposed a real bug, replayed on every run.

Each entry is (seed, nodes, steps, what it found). The harness has evolved since some of
them were found, so they may now play out differently; they stay as extra coverage of the
regimes that once broke (replay any of them with ``python -m tests.simulation``).
"""

from __future__ import annotations

import pytest

from .checker import InvariantViolation
from .ending import LivenessViolation
from .harness import run_seed
from .sim_config import SimConfig
from .test_simulation import run_seeds_shaped

# Found during the first long soak (5 nodes, 600 steps): after healing, a follower far behind
# a compacted leader needed a snapshot sent in 32-byte chunks, and the leader resent the
# chunk in flight at every heartbeat, doubling the traffic; the cluster missed the liveness
# deadline. Fixed: a chunk is resent only after two silent heartbeat intervals, and the
# deadline now allows one round trip per chunk of the largest snapshot.
SNAPSHOT_CATCH_UP = [100003, 100007, 100012, 100088, 100098, 100109, 100143, 100156, 100210]
SNAPSHOT_CATCH_UP += [100241, 100255, 100262, 100281, 100286, 100298, 100391, 100456, 100481]
SNAPSHOT_CATCH_UP += [100550, 100565, 100572, 100574, 100641, 100647, 100656, 100702]

# Same soak: one entry per APP and one APP in flight, against a client load faster than that;
# the backlog after healing outlasted the liveness deadline (the deadline now grows with the
# entries still to replicate).
REPLICATION_BACKLOG = [100532]

REGRESSIONS = [(seed, 5, 600) for seed in SNAPSHOT_CATCH_UP + REPLICATION_BACKLOG]

# Membership, while it was being built (3 nodes at the start, 7 at most):
# - 1745: a node that never received the entries adding a new voter ignored that voter's
#   vote requests as coming from a stranger; with the old leader gone, the new voter needed
#   exactly that vote and no election could succeed. Now vote requests from non-members are
#   ignored only while a leader is heard from (leader stickiness, Raft thesis 4.2.3).
# - 26: a learner was promoted inside the very input that committed an entry, so the commit
#   (decided under the old configuration) looked short of the new majority. Promotions now
#   happen on a leader tick, never in the middle of a commit.
# - 1677, 1787: a deposed leader rightly proposed a change after committing in its own term,
#   while its later entries were being replaced; the checker looked for that commit at the
#   wrong index.
# - 201272 (soak, 5 nodes, 400 steps, pre-vote and check-quorum both off): a removed node
#   that missed its removal kept campaigning, and each time it bumped the term of the two
#   stale nodes that still counted it as a voter; they then ignored the leader's snapshot
#   chunks (silently, as a stale leader was only answered with pre-vote or check-quorum on)
#   and never caught up. Leader stickiness now applies without check-quorum too, and stale
#   leaders are always told the newer term.
REGRESSIONS += [(1745, 3, 250), (26, 3, 200), (1677, 3, 250), (1787, 3, 250)]
REGRESSIONS += [(201272, 5, 400)]


@pytest.mark.parametrize("chunk", range(2))
def test_regression_seeds(chunk: int) -> None:
    failures = run_seeds_shaped(REGRESSIONS[chunk::2])
    assert not failures, "\n".join(failures)


# Lost data directories (``SimConfig.with_wipes``), while the fault was being built:
# - 500182, 500195, 500412: a second node of three was wiped while the first still
#   recovered, at a moment when every node was down; the fault's limit (at most a minority
#   of the voters without their data) looked only at running nodes. With two of three blank
#   no leader can be elected, rightly; the limit now also reads crashed nodes' configuration.
WIPE_REGRESSIONS = [(500182, 3, 250), (500195, 3, 250), (500412, 3, 250)]


def test_wipe_regression_seeds() -> None:
    failures = []
    for seed, nodes, steps in WIPE_REGRESSIONS:
        cfg = SimConfig.from_seed(seed, nodes, steps).with_wipes()
        try:
            run_seed(seed, nodes, steps, cfg=cfg)
        except (InvariantViolation, LivenessViolation) as exc:
            failures.append(f"seed {seed}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
