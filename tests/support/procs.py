"""Real node processes for integration tests and benchmarks.

``ProcessCluster`` writes one TOML file per node (free loopback ports, a temp data dir each),
starts each node as a child process, and stops exactly the processes it started, by PID.
Waiting is always polling a condition against a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
SECRET = "integration-test-secret-0123456789"


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for binding now; held open together so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02
) -> T:
    """Poll ``condition`` until it returns a truthy value; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; last: {last_exc!r}"
            )
        time.sleep(interval)  # polling interval, not synchronisation


def http_json(
    method: str,
    url: str,
    body: object | None = None,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return err.code, parsed, dict(err.headers)


@dataclass
class NodeProcess:
    node_id: str
    http_port: int
    raft_port: int
    config_path: Path
    data_dir: Path
    log_path: Path
    command: Sequence[str]
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # after ``--config``: e.g. ``--join URL``

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.alive, f"{self.node_id} already running"
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [*self.command, "--config", str(self.config_path), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **self.env},
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process hangs with its sockets open, as a stalled machine would."""
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def wipe(self) -> None:
        """Lose the whole data dir, as a replaced disk would (the node must be down)."""
        assert not self.alive, f"{self.node_id} is running"
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def status(self, timeout: float = 1.0) -> dict[str, Any]:
        code, body, _ = http_json("GET", f"{self.url}/cluster/status", timeout=timeout)
        if code != 200 or not isinstance(body, dict):
            raise ValueError(f"status {code}")
        return body

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ProcessCluster:
    """N nodes of one cluster on free loopback ports, each in its own data dir under ``root``."""

    def __init__(
        self,
        root: Path,
        size: int = 3,
        command: Sequence[str] | None = None,
        raft: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        tables: dict[str, dict[str, Any]] | None = None,
        extra_toml: str = "",
    ) -> None:
        """``raft`` fills the ``[raft]`` table; ``tables`` adds others (``{"http": {...}}``);
        ``extra_toml`` is appended as it is (e.g. ``[auth]`` with its arrays of tables)."""
        self.root = root
        command = list(command or [sys.executable, "-m", "raft3d", "serve"])
        ports = free_ports(2 * size)
        ids = [f"n{i + 1}" for i in range(size)]
        members = "".join(
            f'\n[[cluster.members]]\nid = "{nid}"\nhttp = "127.0.0.1:{ports[2 * i]}"\n'
            f'raft = "127.0.0.1:{ports[2 * i + 1]}"\n'
            for i, nid in enumerate(ids)
        )
        self._command = command
        self._env = dict(env or {})
        raft_table = "".join(f"{k} = {json.dumps(v)}\n" for k, v in (raft or {}).items())
        for name, values in (tables or {}).items():
            raft_table += f"\n[{name}]\n" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in values.items()
            )
        self._tail = f"\n[raft]\n{raft_table}{extra_toml}"
        self.nodes: dict[str, NodeProcess] = {}
        for i, nid in enumerate(ids):
            data_dir = root / nid
            conf = root / f"{nid}.toml"
            conf.write_text(
                f'[node]\nid = "{nid}"\nhttp = "127.0.0.1:{ports[2 * i]}"\n'
                f'raft = "127.0.0.1:{ports[2 * i + 1]}"\ndata_dir = "{data_dir}"\n\n'
                f'[cluster]\nsecret = "{SECRET}"\n{members}\n[raft]\n{raft_table}'
                f"{extra_toml}"
            )
            self.nodes[nid] = NodeProcess(
                nid,
                ports[2 * i],
                ports[2 * i + 1],
                conf,
                data_dir,
                root / f"{nid}.log",
                command,
                env=dict(env or {}),
            )

    def add_node(self, node_id: str, join: Sequence[str]) -> NodeProcess:
        """A new node (not started) on fresh ports and an empty data dir, that asks the
        cluster at ``join`` (HTTP base URLs) to add it: ``raft3d serve --join URL``. Its
        config lists only itself among the members (SPEC §6: ``conf/`` seeds new clusters
        only)."""
        assert node_id not in self.nodes or not self.nodes[node_id].alive
        http_port, raft_port = free_ports(2)
        data_dir = self.root / node_id
        if node_id in self.nodes:  # the same id again: a fresh data dir beside the old one
            data_dir = self.root / f"{node_id}-{raft_port}"
        own = f'http = "127.0.0.1:{http_port}"\nraft = "127.0.0.1:{raft_port}"\n'
        conf = self.root / f"{data_dir.name}.toml"
        conf.write_text(
            f'[node]\nid = "{node_id}"\n{own}data_dir = "{data_dir}"\n\n'
            f'[cluster]\nsecret = "{SECRET}"\n\n[[cluster.members]]\nid = "{node_id}"\n{own}'
            f"{self._tail}"
        )
        args = [a for url in join for a in ("--join", url)]
        node = NodeProcess(
            node_id,
            http_port,
            raft_port,
            conf,
            data_dir,
            self.root / f"{data_dir.name}.log",
            self._command,
            env=dict(self._env),
            args=args,
        )
        self.nodes[node_id] = node
        return node

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.alive:
                node.kill()

    def alive(self) -> list[NodeProcess]:
        # A copy first: a client thread may ask while the test adds a node.
        return [n for n in list(self.nodes.values()) if n.alive]

    def wait_for_leader(
        self, timeout: float = 10.0, among: Sequence[NodeProcess] | None = None
    ) -> NodeProcess:
        """A node that says it leads, agreed on by every live node polled."""

        def leader() -> NodeProcess | None:
            nodes = list(among) if among is not None else self.alive()
            statuses = {}
            for n in nodes:
                try:
                    statuses[n.node_id] = n.status()
                except (OSError, ValueError):
                    return None
            leaders = [nid for nid, s in statuses.items() if s["role"] == "leader"]
            if len(leaders) != 1:
                return None
            term = statuses[leaders[0]]["term"]
            if all(s["leader_id"] == leaders[0] and s["term"] == term for s in statuses.values()):
                return self.nodes[leaders[0]]
            return None

        return wait_until(leader, timeout, "a leader agreed on by all live nodes")

    def wait_for_applied(self, index: int, timeout: float = 10.0) -> None:
        for node in self.alive():
            wait_until(
                lambda n=node: n.status()["applied_index"] >= index,  # type: ignore[misc]
                timeout,
                f"{node.node_id} to apply index {index}",
            )

    def logs(self) -> str:
        return "\n".join(f"--- {n.node_id} ---\n{n.log_tail()}" for n in self.nodes.values())
