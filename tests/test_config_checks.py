"""Config checked at load: each bad value is one ``raft3d: ...`` line and exit code 2.

Issue 8: ``heartbeat_ms = -5``, ``request_timeout_s = nan``, ``max_body_bytes = -1``,
``tick_ms = 0`` were accepted, and a port in use crashed with a traceback.
"""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raft3d.config import (
    ConfigError,
    HttpSettings,
    LimitSettings,
    RaftSettings,
    settings_from_mapping,
)
from tests.support.procs import REPO, ProcessCluster, free_ports, wait_until


def node_file(
    sections: dict[str, Any] | None = None, http_port: int = 18080, raft_port: int = 19080
) -> dict[str, Any]:
    member = {"id": "n1", "http": f"127.0.0.1:{http_port}", "raft": f"127.0.0.1:{raft_port}"}
    return {
        "node": {**member, "data_dir": "data/n1"},
        "cluster": {"secret": "a-test-secret-0123456789", "members": [member]},
        **(sections or {}),
    }


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "negative heartbeat": ({"raft": {"heartbeat_ms": -5}}, "raft.heartbeat_ms"),
    "zero tick": ({"raft": {"tick_ms": 0}}, "raft.tick_ms"),
    "nan timeout": ({"http": {"request_timeout_s": float("nan")}}, "http.request_timeout_s"),
    "inf timeout": ({"http": {"request_timeout_s": float("inf")}}, "http.request_timeout_s"),
    "zero timeout": ({"http": {"request_timeout_s": 0}}, "http.request_timeout_s"),
    "negative body": ({"http": {"max_body_bytes": -1}}, "http.max_body_bytes"),
    "string body": ({"http": {"max_body_bytes": "1MB"}}, "http.max_body_bytes"),
    "bool as int": ({"raft": {"snapshot_threshold": True}}, "raft.snapshot_threshold"),
    "int as bool": ({"raft": {"pre_vote": 1}}, "raft.pre_vote"),
    "no connections": ({"http": {"max_connections": 0}}, "http.max_connections"),
    "negative header timeout": ({"http": {"header_timeout_s": -1.0}}, "http.header_timeout_s"),
    "negative quota": ({"limits": {"max_print_jobs": -1}}, "limits.max_print_jobs"),
    "unknown setting": ({"limits": {"max_jobs": 5}}, "limits.max_jobs"),
    "unknown section": ({"limit": {"max_print_jobs": 5}}, "[limit]"),
    "heartbeat under tick": (
        {"raft": {"tick_ms": 20, "heartbeat_ms": 10, "election_timeout_ms": 300}},
        "raft.heartbeat_ms",
    ),
    "election under two heartbeats": (
        {"raft": {"heartbeat_ms": 200, "election_timeout_ms": 300}},
        "raft.election_timeout_ms",
    ),
    "entry over message": (
        {"raft": {"max_entry_bytes": 2 * 1024 * 1024, "max_msg_bytes": 1024 * 1024}},
        "raft.max_entry_bytes",
    ),
    "oversized message": ({"raft": {"max_msg_bytes": 64 * 1024 * 1024}}, "raft.max_msg_bytes"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_each_bad_value_is_refused_naming_it(case: tuple[dict[str, Any], str]) -> None:
    sections, name = case
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(node_file(sections))
    message = str(raised.value)
    assert name in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("http", "raft", "name"),
    [(0, 19080, "node.http"), (70000, 19080, "node.http"), (18080, 18080, "node.raft")],
)
def test_ports_out_of_range_or_shared_are_refused(http: int, raft: int, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        settings_from_mapping(node_file(None, http, raft))


def test_defaults_and_good_values_load() -> None:
    settings = settings_from_mapping(
        node_file(
            {
                "http": {"request_timeout_s": 2, "header_timeout_s": 1.5, "max_connections": 10},
                "limits": {"max_printers": 0},
            }
        )
    )
    assert settings.http_settings == HttpSettings(
        request_timeout_s=2.0, header_timeout_s=1.5, max_connections=10
    )
    assert isinstance(settings.http_settings.request_timeout_s, float)
    assert settings.limits == LimitSettings(max_printers=0)
    assert settings.raft_settings == RaftSettings()
    assert not settings.uses_demo_secret


def serve(config: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raft3d", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 1) as cluster:
        yield cluster


@pytest.mark.parametrize(
    ("setting", "name"),
    [
        ("heartbeat_ms = -5", "raft.heartbeat_ms"),
        ("tick_ms = 0", "raft.tick_ms"),
        ("election_timeout_ms = 60", "raft.election_timeout_ms"),
    ],
)
def test_serve_with_a_bad_value_exits_2_with_one_line(
    one_node: ProcessCluster, setting: str, name: str
) -> None:
    node = one_node.nodes["n1"]
    node.config_path.write_text(node.config_path.read_text() + setting + "\n")
    done = serve(node.config_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("raft3d: ") and name in lines[0]
    assert not node.data_dir.exists()  # refused before anything was created


def test_serve_with_a_nan_timeout_exits_2(one_node: ProcessCluster) -> None:
    node = one_node.nodes["n1"]
    node.config_path.write_text(
        node.config_path.read_text() + "\n[http]\nrequest_timeout_s = nan\nmax_body_bytes = 5\n"
    )
    done = serve(node.config_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "raft3d: http.request_timeout_s must be a finite number, got nan"
    ]


@pytest.mark.parametrize("which", ["http", "raft"])
def test_a_port_in_use_exits_2_with_one_line_and_no_traceback(
    one_node: ProcessCluster, which: str
) -> None:
    node = one_node.nodes["n1"]
    port = node.http_port if which == "http" else node.raft_port
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        done = serve(node.config_path)
    finally:
        holder.close()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last == f"raft3d: cannot listen on node.{which} 127.0.0.1:{port}: address already in use"


def test_data_dir_is_private_and_the_demo_secret_is_warned_about(tmp_path: Path) -> None:
    demo = "raft3d-local-demo-secret-do-not-use-in-production"
    with ProcessCluster(tmp_path, 1, env={"RAFT3D_CLUSTER_SECRET": demo}) as cluster:
        node = cluster.nodes["n1"]
        cluster.start()
        cluster.wait_for_leader(timeout=30)
        files = wait_until(
            lambda: [p for p in node.data_dir.rglob("*") if p.is_file()], 10, "node files"
        )
        log = wait_until(lambda: node.log_path.read_text(), 10, "the node's log")
        assert "level=warning" in log and "public demo secret" in log
        assert stat.S_IMODE(node.data_dir.stat().st_mode) == 0o700
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        for path in node.data_dir.rglob("*"):
            if path.is_dir():
                assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
        assert node.terminate() == 0


def test_no_demo_secret_warning_with_a_real_secret(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, 1) as cluster:
        cluster.start()
        cluster.wait_for_leader(timeout=30)
        node = cluster.nodes["n1"]
        assert "demo secret" not in node.log_path.read_text()
        assert free_ports(1)  # the helper still hands out ports while a node runs


def test_a_data_dir_held_by_a_running_node_exits_2_with_one_line(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, 1) as cluster:
        cluster.start()
        cluster.wait_for_leader(timeout=30)
        node = cluster.nodes["n1"]
        done = serve(node.config_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        last = done.stderr.splitlines()[-1]
        assert last.startswith("raft3d: cannot start node n1: ") and "in use" in last
        assert node.alive  # the running node is untouched
