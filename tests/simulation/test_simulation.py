"""The randomized simulation: thousands of seeds, each a different run of faults and load.

The seeds are split over a few test items so that progress shows and a failure names a
small range; each failing seed is reported with the one command that replays it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from .checker import InvariantViolation
from .ending import LivenessViolation
from .harness import replay_command, run_seed
from .sim_config import SimConfig, default_shape

CHUNKS = 8
MAX_REPORTED = 5


def run_seeds(seeds: range) -> list[str]:
    """Run every seed in its default shape; describe each failure (with replay command)."""
    return run_seeds_shaped([(seed, *default_shape(seed)) for seed in seeds])


def run_seeds_shaped(runs: list[tuple[int, int, int]]) -> list[str]:
    """Run (seed, nodes, steps) triples; describe each failure (with replay command)."""
    failures: list[str] = []
    for seed, nodes, steps in runs:
        try:
            run_seed(seed, nodes, steps)
        except (InvariantViolation, LivenessViolation) as exc:
            failures.append(
                f"seed {seed} ({nodes} nodes, {steps} steps): {type(exc).__name__}: {exc}\n"
                f"    replay: {replay_command(seed, nodes, steps)} --trace"
            )
            if len(failures) >= MAX_REPORTED:
                break
    return failures


@pytest.mark.parametrize("chunk", range(2))
def test_cores_keeping_trailing_entries_stay_safe_and_live(chunk: int) -> None:
    """Snapshots that keep a few entries below them (a follower slightly behind gets entries,
    not a snapshot), across seeds of every regime."""
    failures: list[str] = []
    for seed in range(chunk, 400, 2):
        nodes, steps = default_shape(seed)
        cfg = replace(SimConfig.from_seed(seed, nodes, steps), trailing_entries=1 + seed % 8)
        try:
            run_seed(seed, nodes, steps, cfg=cfg)
        except (InvariantViolation, LivenessViolation) as exc:
            failures.append(f"seed {seed}, trailing {cfg.trailing_entries}: {exc}")
    assert not failures, "\n".join(failures[:MAX_REPORTED])


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_seeds_keep_raft_safe_and_live(chunk: int, sim_seed_range: range) -> None:
    seeds = sim_seed_range[chunk::CHUNKS]
    failures = run_seeds(seeds)
    assert not failures, "\n".join(failures)


WIPE_SEEDS = range(500_000, 500_600)


@pytest.mark.parametrize("chunk", range(3))
def test_seeds_with_lost_data_directories_keep_raft_safe_and_live(chunk: int) -> None:
    """Crashed nodes come back with their whole data directory lost, in recovery mode, on
    top of every other fault (membership changes included)."""
    failures: list[str] = []
    wipes = 0
    for seed in WIPE_SEEDS[chunk::3]:
        nodes, steps = default_shape(seed)
        cfg = SimConfig.from_seed(seed, nodes, steps).with_wipes()
        try:
            wipes += run_seed(seed, nodes, steps, cfg=cfg).wipes
        except (InvariantViolation, LivenessViolation) as exc:
            failures.append(
                f"seed {seed} ({nodes} nodes, {steps} steps): {type(exc).__name__}: {exc}\n"
                f"    replay: {replay_command(seed, nodes, steps)} --wipes --trace"
            )
    assert not failures, "\n".join(failures[:MAX_REPORTED])
    assert wipes >= len(WIPE_SEEDS[chunk::3]) // 4  # the fault does strike (about 0.6 a seed)


def test_seeds_with_reads_asked_again_keep_raft_safe_and_live() -> None:
    """Lost ReadIndex requests are asked again, as the node driver does, in a sample of
    seeds (the default runs leave them unanswered to keep their histories)."""
    failures = []
    for seed in range(300_000, 300_060):
        nodes, steps = default_shape(seed)
        cfg = replace(SimConfig.from_seed(seed, nodes, steps), read_retry_ticks=10)
        try:
            run_seed(seed, nodes, steps, cfg=cfg)
        except (InvariantViolation, LivenessViolation) as exc:
            failures.append(f"seed {seed}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
