"""``Procfile.five`` builds the 5-node demo on ``--join``: three seed nodes start from
``conf/five/``, two more join the running cluster through the seeds' HTTP addresses."""

from __future__ import annotations

import shlex
from pathlib import Path

from raft3d.config import Settings, load_settings
from tests.support.procs import REPO

SEEDS = ["node1", "node2", "node3"]
JOINERS = ["node4", "node5"]


def procfile(name: str) -> dict[str, list[str]]:
    entries = {}
    for line in (REPO / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            process, command = line.split(":", 1)
            entries[process] = shlex.split(command)
    return entries


def serve_args(command: list[str]) -> tuple[Path, list[str]]:
    """The config file and the ``--join`` URLs of an ``exec PYTHON -m raft3d serve`` line."""
    assert command[0] == "exec" and command[2:5] == ["-m", "raft3d", "serve"], command
    config = REPO / command[command.index("--config") + 1]
    joins = [command[i + 1] for i, arg in enumerate(command) if arg == "--join"]
    return config, joins


def settings_of(command: list[str]) -> Settings:
    return load_settings(serve_args(command)[0], env={})


def test_three_seeds_start_from_conf_and_two_nodes_join_them() -> None:
    entries = procfile("Procfile.five")
    assert sorted(entries) == SEEDS + JOINERS
    seeds = {name: settings_of(entries[name]) for name in SEEDS}
    for name, settings in seeds.items():
        assert settings.node_id == name
        assert serve_args(entries[name])[1] == []  # seeds bootstrap; they join nobody
        assert [m.node_id for m in settings.members] == SEEDS
    urls = {m.node_id: m.http_url for m in seeds["node1"].members}
    for name in SEEDS:
        assert {m.node_id: m.http_url for m in seeds[name].members} == urls
    for name in JOINERS:
        settings = settings_of(entries[name])
        assert settings.node_id == name
        assert [m.node_id for m in settings.members] == [name]  # it learns the rest by log
        assert serve_args(entries[name])[1] == [urls[s] for s in SEEDS]


def test_every_node_has_its_own_ports_and_data_dir() -> None:
    all_settings = [settings_of(c) for c in procfile("Procfile.five").values()]
    https = [s.http.port for s in all_settings]
    rafts = [s.raft.port for s in all_settings]
    assert len(set(https + rafts)) == 10
    assert sorted(https) == list(range(8080, 8085))
    data_dirs = {s.data_dir for s in all_settings}
    assert len(data_dirs) == 5
    assert all(Path(d).parts[:2] == ("data", "five") for d in data_dirs)
