"""The knobs of a simulated run, all picked from its seed (``SimConfig.from_seed``), so that
seeds explore different regimes and a seed always replays the same run; and the shape of a
seed in the default run (``default_shape``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from raft3d.consensus import CoreConfig, NodeId

MEMBERSHIP_SHARE = 0.4  # of the seeds run with membership changes
WIPE_RATES = (0.1, 0.3, 0.6)  # ``SimConfig.with_wipes`` picks one


@dataclass(frozen=True)
class SimConfig:
    seed: int
    nodes: int
    steps: int
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_bytes: int = 1 << 20
    max_inflight: int = 256
    chunk_bytes: int = 1024
    snapshot_every: int = 10
    drop_rate: float = 0.05
    dup_rate: float = 0.02
    max_delay: int = 2
    crash_rate: float = 0.01
    restart_rate: float = 0.1
    reboot_rate: float = 0.3  # chance a crashed node comes straight back in the same step
    leader_flap_rate: float = 0.0  # chance a newly elected leader is cut off at once
    partition_rate: float = 0.01
    heal_rate: float = 0.1
    propose_rate: float = 0.4
    read_rate: float = 0.1
    slow_disk_rate: float = 0.2  # typical chance a persist is still running at a given moment
    early_send: bool = False
    # Write every commit index change before applying (the node driver does not: it leaves a
    # commit-only change volatile). On, so that the checker's "a restart never falls below
    # what was applied" holds; test_checker_catches_bugs shows what happens with it off.
    sync_commit: bool = True
    # Ticks before an unanswered read is asked again (the driver: 0.1 s). Off by default so
    # that every seed keeps the history it had before reads were retried (regression seeds
    # replay what they were kept for); test_simulation runs seeds with it on.
    read_retry_ticks: float = float("inf")
    eager_drive: float = 0.6  # chance a node runs its Ready loop right after an input
    wire_rate: float = 0.02
    membership_rate: float = 0.0  # chance per step of a membership change (membership.py)
    promote_lag: int = 4
    trailing_entries: int = 0  # log entries a core keeps below its own snapshots
    # Chance that a crashed node restarts with its whole data directory lost, in recovery
    # mode (``Cluster.wipe``). Off by default so that every seed keeps its history;
    # test_simulation runs seeds with it on (``with_wipes``).
    wipe_rate: float = 0.0

    @classmethod
    def from_seed(cls, seed: int, nodes: int, steps: int) -> SimConfig:
        """Pick the run's knobs from the seed; membership changes come from a stream of
        their own, so that turning them on leaves the other knobs as they were."""
        cfg = cls._knobs_from_seed(seed, nodes, steps)
        rng = random.Random(seed * 6007 + nodes)
        if rng.random() < MEMBERSHIP_SHARE:
            return replace(
                cfg,
                membership_rate=rng.uniform(0.02, 0.1),
                promote_lag=rng.choice([0, 2, 8]),
            )
        return cfg

    def with_wipes(self) -> SimConfig:
        """The same run with lost data directories among its faults (rate from the seed)."""
        rng = random.Random(self.seed * 5381 + self.nodes)
        return replace(self, wipe_rate=rng.choice(WIPE_RATES))

    @classmethod
    def _knobs_from_seed(cls, seed: int, nodes: int, steps: int) -> SimConfig:
        """Pick the run's knobs from the seed, so that seeds explore different regimes."""
        rng = random.Random(seed * 7919 + nodes)
        if rng.random() < 0.35:
            return cls._chaotic(rng, seed, nodes, steps)
        election = rng.randint(8, 16)
        both_on = rng.random() < 0.8
        return cls(
            seed=seed,
            nodes=nodes,
            steps=steps,
            election_ticks=election,
            heartbeat_ticks=rng.randint(1, 3),
            pre_vote=both_on or rng.random() < 0.5,
            check_quorum=both_on or rng.random() < 0.5,
            max_msg_bytes=rng.choice([1, 40, 200, 1 << 20]),
            max_inflight=rng.choice([1, 2, 4, 256]),
            chunk_bytes=rng.choice([32, 128, 512, 4096]),
            snapshot_every=rng.randint(5, 20),
            drop_rate=rng.choice([0.0, 0.02, 0.1, 0.2]),
            dup_rate=rng.choice([0.0, 0.02, 0.1]),
            max_delay=rng.randint(1, 4),
            crash_rate=rng.choice([0.0, 0.005, 0.02, 0.05]),
            restart_rate=rng.uniform(0.05, 0.3),
            reboot_rate=rng.choice([0.0, 0.3, 0.8]),
            leader_flap_rate=rng.choice([0.0, 0.0, 0.1]),
            partition_rate=rng.choice([0.0, 0.01, 0.03]),
            heal_rate=rng.uniform(0.03, 0.2),
            propose_rate=rng.uniform(0.1, 0.7),
            read_rate=rng.uniform(0.0, 0.3),
            slow_disk_rate=rng.choice([0.0, 0.2, 0.5]),
            early_send=rng.random() < 0.5,
            eager_drive=rng.uniform(0.2, 1.0),
        )

    @classmethod
    def _chaotic(cls, rng: random.Random, seed: int, nodes: int, steps: int) -> SimConfig:
        """Short election timeouts against slow links and frequent crashes of leaders: many
        elections, competing candidates in the same term and leaders dying mid-replication
        (the raw material of Raft's classic bugs)."""
        return cls(
            seed=seed,
            nodes=nodes,
            steps=steps,
            election_ticks=rng.randint(5, 8),
            heartbeat_ticks=rng.randint(1, 2),
            pre_vote=rng.random() < 0.6,
            check_quorum=rng.random() < 0.6,
            max_msg_bytes=rng.choice([1, 1, 40, 1 << 20]),
            max_inflight=rng.choice([1, 2, 256]),
            chunk_bytes=rng.choice([128, 512, 4096]),
            snapshot_every=rng.randint(5, 20),
            drop_rate=rng.choice([0.0, 0.05, 0.15]),
            dup_rate=rng.choice([0.0, 0.05, 0.2]),
            max_delay=rng.randint(2, 4),
            crash_rate=rng.uniform(0.04, 0.1),
            restart_rate=rng.uniform(0.2, 0.6),
            reboot_rate=rng.choice([0.3, 0.8]),
            leader_flap_rate=rng.uniform(0.2, 0.6),
            partition_rate=rng.choice([0.0, 0.03, 0.06]),
            heal_rate=rng.uniform(0.1, 0.3),
            propose_rate=rng.uniform(0.2, 0.8),
            read_rate=rng.uniform(0.0, 0.3),
            slow_disk_rate=rng.choice([0.0, 0.3, 0.6]),
            early_send=rng.random() < 0.5,
            eager_drive=rng.uniform(0.2, 1.0),
        )

    def core_config(
        self, node_id: NodeId, voters: tuple[NodeId, ...], recovering: bool = False
    ) -> CoreConfig:
        return CoreConfig(
            node_id=node_id,
            voters=voters,
            election_ticks=self.election_ticks,
            heartbeat_ticks=self.heartbeat_ticks,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            max_msg_bytes=self.max_msg_bytes,
            max_inflight_msgs=self.max_inflight,
            max_entry_bytes=1024,
            snapshot_chunk_bytes=self.chunk_bytes,
            max_committed_bytes_per_ready=256,
            promote_lag=self.promote_lag,
            trailing_entries=self.trailing_entries,
            recovering=recovering,
        )


def default_shape(seed: int) -> tuple[int, int]:
    """(nodes, steps) of a seed in the default run: 3-node clusters for 60% of the seeds,
    5-node ones for the rest."""
    if seed % 5 in (1, 3):
        return 5, 200
    return 3, 250
