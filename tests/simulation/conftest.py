"""Options of the simulation suite.

``--sim-seeds N`` (or ``RAFT3D_SIM_SEEDS=N``) runs N seeds instead of the default 2,000, and
``--sim-seed-start S`` (or ``RAFT3D_SIM_SEED_START=S``) starts from seed S, for soaks:

    .venv/bin/pytest tests/simulation --sim-seeds 50000 --sim-seed-start 1000000
"""

from __future__ import annotations

import os

import pytest

DEFAULT_SEEDS = 2000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raft3d simulation")
    group.addoption("--sim-seeds", type=int, default=None, help="number of simulation seeds")
    group.addoption("--sim-seed-start", type=int, default=None, help="first simulation seed")


def _setting(config: pytest.Config, option: str, env: str, default: int) -> int:
    value = config.getoption(option, default=None)
    if value is None:
        value = int(os.environ.get(env, default))
    return int(value)


@pytest.fixture(scope="session")
def sim_seed_range(request: pytest.FixtureRequest) -> range:
    count = _setting(request.config, "--sim-seeds", "RAFT3D_SIM_SEEDS", DEFAULT_SEEDS)
    start = _setting(request.config, "--sim-seed-start", "RAFT3D_SIM_SEED_START", 0)
    return range(start, start + count)
