"""A private LAN of network namespaces for multi-host tests.

``Lan`` makes one namespace per host, all cabled by veth pairs to a bridge that lives in a
namespace of its own, with addresses from ``SUBNET`` that exist only inside those
namespaces: nothing is added to, or routed through, the machine's own network. Every name
carries a per-run tag, and ``close`` deletes every namespace it made (which also removes the
veths and the bridge in them), also after a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence

SUBNET = "10.77.0"  # /24, inside our namespaces only


class NamespacesUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no ``ip``, or not permitted)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def probe() -> None:
    """Raise ``NamespacesUnavailable`` with the reason if namespaces cannot be used."""
    if shutil.which("ip") is None:
        raise NamespacesUnavailable("the `ip` command (iproute2) is not installed")
    if os.geteuid() != 0:
        raise NamespacesUnavailable("creating network namespaces needs root")
    name = f"r3d-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
    except RuntimeError as exc:
        raise NamespacesUnavailable(f"`ip netns add` is not permitted here: {exc}") from None
    _ip("netns", "del", name)


class Lan:
    def __init__(self, hosts: Sequence[str]) -> None:
        """Hosts get ``SUBNET.1``, ``SUBNET.2``… in order."""
        self.tag = secrets.token_hex(3)  # short: interface names are at most 15 characters
        self.switch = f"r3d-{self.tag}-sw"
        self.namespaces: dict[str, str] = {}
        self.addresses: dict[str, str] = {}
        self._made: list[str] = []
        try:
            self._add_namespace(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, host in enumerate(hosts, start=1):
                self._add_host(host, f"{SUBNET}.{i}", i)
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _add_host(self, host: str, address: str, i: int) -> None:
        ns = f"r3d-{self.tag}-{host}"
        self._add_namespace(ns)
        port = f"v{self.tag}p{i}"  # the switch's end of the cable
        _ip(
            "-n",
            self.switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        )
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        self.namespaces[host] = ns
        self.addresses[host] = address

    def unplug(self, host: str) -> None:
        """Take the host's link down from inside its namespace (a partition)."""
        _ip("-n", self.namespaces[host], "link", "set", "eth0", "down")

    def plug(self, host: str) -> None:
        _ip("-n", self.namespaces[host], "link", "set", "eth0", "up")

    def exec_prefix(self, host: str) -> list[str]:
        """Prepend to a command to run it on ``host``; ``ip netns exec`` execs it in place, so
        the started process's PID is the command's own."""
        return ["ip", "netns", "exec", self.namespaces[host]]

    def close(self) -> None:
        problems = []
        for name in reversed(self._made):
            try:
                _ip("netns", "del", name)
            except RuntimeError as exc:
                problems.append(str(exc))
        self._made = []
        if problems:
            raise RuntimeError("; ".join(problems))

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def our_namespaces() -> list[str]:
    """Names of every namespace a ``Lan`` may have made (to check cleanup)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in out.stdout.splitlines() if line.startswith("r3d-")]
