"""Three hosts on a private LAN of network namespaces, with TLS and client tokens on.

One node per namespace, bound to every interface and advertising its LAN address; the test
talks to them from a fourth namespace, over HTTPS, with tokens. Checks election, writes via
every node, a partition of the leader (its link taken down inside its namespace) healed with
the old leader catching up, and failover when the leader is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import netns
from tests.support.procs import REPO, wait_until
from tests.support.secure import TOKENS, SecureNode, bearer, write_configs

HOSTS = ("n1", "n2", "n3")
HTTP_PORT, RAFT_PORT = 8443, 9443  # the same on every host: each has its own network
CLIENT_HOST = "cl"


def _probe() -> str | None:
    try:
        netns.probe()
    except netns.NamespacesUnavailable as exc:
        return str(exc)
    return None


_UNAVAILABLE = _probe()
pytestmark = pytest.mark.skipif(
    _UNAVAILABLE is not None, reason=f"network namespaces unavailable: {_UNAVAILABLE}"
)


class Client:
    """The client namespace's HTTPS client (``netns_client.py``), one request at a time."""

    def __init__(self, lan: netns.Lan, ca: Path) -> None:
        self.proc = subprocess.Popen(
            [
                *lan.exec_prefix(CLIENT_HOST),
                sys.executable,
                str(REPO / "tests/support/netns_client.py"),
                str(ca),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(
        self, method: str, url: str, body: object = None, role: str = "admin", timeout: float = 5.0
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {
            "method": method,
            "url": url,
            "body": body,
            "timeout": timeout,
            "headers": bearer(role) if role else {},
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Host:
    def __init__(self, lan: netns.Lan, node: SecureNode, config: Path, log: Path) -> None:
        self.node, self.config, self.log = node, config, log
        self.lan = lan
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def url(self) -> str:
        return self.node.url

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    *self.lan.exec_prefix(self.node_id),
                    sys.executable,
                    "-m",
                    "raft3d",
                    "serve",
                    "--config",
                    str(self.config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            )
        # `ip netns exec` execs the command in place: the PID we hold becomes the node's own
        # (so SIGKILL reaches the node, not a wrapper).
        cmdline = Path(f"/proc/{self.proc.pid}/cmdline")
        wait_until(lambda: b"raft3d" in cmdline.read_bytes().split(b"\0"), 10, "the exec")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Farm:
    def __init__(self, lan: netns.Lan, hosts: dict[str, Host], client: Client, ca: Path) -> None:
        self.lan, self.hosts, self.client, self.ca = lan, hosts, client, ca

    def status(self, host: Host) -> dict[str, Any] | None:
        answer = self.client.call("GET", f"{host.url}/cluster/status", role="viewer", timeout=1)
        return answer["body"] if answer.get("status") == 200 else None

    def leader(self, among: list[Host], timeout: float = 30.0) -> Host:
        def agreed() -> Host | None:
            statuses = [self.status(h) for h in among]
            if any(s is None for s in statuses):
                return None
            leaders = {s["leader_id"] for s in statuses if s is not None}
            if len(leaders) != 1 or None in leaders:
                return None
            (leader_id,) = leaders
            return self.hosts[leader_id] if self.hosts[leader_id] in among else None

        return wait_until(agreed, timeout, f"a leader agreed on by {[h.node_id for h in among]}")

    def write_printer(self, via: Host, printer_id: str) -> None:
        body = {"id": printer_id, "company": "Prusa", "model": "MK4"}
        answer = self.client.call("POST", f"{via.url}/api/v1/printers", body, role="operator")
        assert answer.get("status") == 201, (via.node_id, answer)

    def printers(self, host: Host, consistency: str = "linearizable") -> list[str]:
        url = f"{host.url}/api/v1/printers?consistency={consistency}"
        answer = self.client.call("GET", url, role="viewer")
        assert answer.get("status") == 200, (host.node_id, answer)
        return sorted(p["id"] for p in answer["body"])

    def logs(self) -> str:
        return "\n".join(
            f"--- {h.node_id} ---\n"
            + "\n".join(h.log.read_text(errors="replace").splitlines()[-30:])
            for h in self.hosts.values()
            if h.log.exists()
        )


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    lan = netns.Lan([*HOSTS, CLIENT_HOST])
    hosts: dict[str, Host] = {}
    client: Client | None = None
    try:
        nodes = [SecureNode(h, "0.0.0.0", lan.addresses[h], HTTP_PORT, RAFT_PORT) for h in HOSTS]
        configs = write_configs(tmp_path, nodes, raft="election_timeout_ms = 600\n")
        for node in nodes:
            host = Host(lan, node, configs[node.node_id], tmp_path / f"{node.node_id}.log")
            hosts[node.node_id] = host
            host.start()
        ca = tmp_path / "certs" / "ca.pem"
        client = Client(lan, ca)
        f = Farm(lan, hosts, client, ca)
        yield f
        print(f.logs())  # shown only when the test failed
    finally:
        for host in hosts.values():
            host.kill()
        if client is not None:
            client.close()
        lan.close()
        assert not [n for n in netns.our_namespaces() if lan.tag in n]


def test_election_writes_via_every_node_and_a_healed_partition(farm: Farm) -> None:
    everyone = list(farm.hosts.values())
    leader = farm.leader(everyone)
    # Status points clients at advertised addresses, not at the 0.0.0.0 the nodes bind.
    status = farm.status(leader)
    assert status is not None
    assert status["leader_http"] == f"https://{leader.node.host}:{HTTP_PORT}"
    assert {p["http_addr"] for p in status["peers"]} == {h.url for h in everyone if h is not leader}
    # The operator's view, from the client host: every node, found from one address.
    table = subprocess.run(
        [*farm.lan.exec_prefix(CLIENT_HOST), sys.executable, "-m", "raft3d", "status",
         "--url", everyone[-1].url, "--ca", str(farm.ca), "--token", TOKENS["viewer"]],
        capture_output=True, text=True, timeout=30, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [(h.node_id, h.url) for h in everyone]
    assert [r[4] for r in rows] == [leader.node_id] * 3
    for i, host in enumerate(everyone):  # followers forward to the leader, over HTTPS
        farm.write_printer(host, f"p{i}")
    for host in everyone:
        assert farm.printers(host) == ["p0", "p1", "p2"]

    # Unauthenticated and unauthorised clients are refused on every host.
    for host in everyone:
        url = f"{host.url}/api/v1/printers"
        assert farm.client.call("GET", url, role="")["status"] == 401
        assert farm.client.call("POST", url, {"id": "x"}, role="viewer")["status"] == 403
        assert farm.client.call("GET", f"{host.url}/readyz", role="")["status"] == 200

    farm.lan.unplug(leader.node_id)
    rest = [h for h in everyone if h is not leader]
    new_leader = farm.leader(rest)
    assert new_leader is not leader
    for i, host in enumerate(rest):
        farm.write_printer(host, f"q{i}")
    assert farm.printers(new_leader) == ["p0", "p1", "p2", "q0", "q1"]
    assert farm.status(leader) is None  # cut off: not even the test can reach it

    farm.lan.plug(leader.node_id)
    wait_until(
        lambda: farm.printers(leader, "local") == ["p0", "p1", "p2", "q0", "q1"],
        30,
        "the old leader to catch up",
    )
    # One leader again, agreed on by all three; the old leader is back in step.
    agreed = farm.leader(everyone)
    statuses = {h.node_id: farm.status(h) for h in everyone}
    assert all(s is not None and s["leader_id"] == agreed.node_id for s in statuses.values())
    assert farm.printers(leader) == ["p0", "p1", "p2", "q0", "q1"]


def test_the_lan_is_removed_even_when_a_test_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), netns.Lan(["a", "b"]) as lan:
        assert len([n for n in netns.our_namespaces() if lan.tag in n]) == 3
        raise RuntimeError("boom")
    assert not [n for n in netns.our_namespaces() if lan.tag in n]


def test_failover_when_the_leader_is_killed(farm: Farm) -> None:
    everyone = list(farm.hosts.values())
    leader = farm.leader(everyone)
    farm.write_printer(leader, "before")
    leader.kill()
    rest = [h for h in everyone if h is not leader]
    new_leader = farm.leader(rest)
    assert new_leader is not leader
    for i, host in enumerate(rest):
        farm.write_printer(host, f"after{i}")
    for host in rest:
        assert farm.printers(host) == ["after0", "after1", "before"]
