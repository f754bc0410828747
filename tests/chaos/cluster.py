"""Real node processes wired through the link proxy, and the means to hurt them.

Node A's config lists every other member B with the raft and http ports of the proxy link
``A>B``: A's peer connection to B and A's forwarded writes to B both cross it (see
``proxy``). Clients talk to each node's own HTTP port directly. Every process is started by
this module and stopped by PID in ``stop()``, also when a run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.procs import REPO, SECRET, NodeProcess, free_ports


def link_name(src: str, dst: str) -> str:
    return f"{src}>{dst}"


class Proxy:
    """The link proxy child process, driven through its stdin/stdout (see ``proxy``)."""

    def __init__(self, channels: Sequence[tuple[str, int, int]], log_path: Path) -> None:
        self.channels = list(channels)
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self, timeout: float = 20.0) -> None:
        args = [f"--link={name}={listen}:{target}" for name, listen, target in self.channels]
        log = self.log_path.open("ab")  # handed to the child, closed once it has it
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.chaos.proxy",
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"the link proxy did not start: {line!r}")

    async def command(self, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        async with self._lock:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"link proxy: {reply['error']}")
        return reply

    async def block(self, links: Sequence[str], mode: str) -> None:
        await self.command({"op": "block", "links": list(links), "mode": mode})

    async def heal(self, links: Sequence[str] = ()) -> None:
        await self.command({"op": "heal", "links": list(links)})

    async def watch(self, links: Sequence[str], nbytes: int, timeout: float) -> bool:
        command = {"op": "watch", "links": list(links), "bytes": nbytes, "timeout": timeout}
        reply = await self.command(command, timeout + 10.0)
        return bool(reply["reached"])

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> None:
        if self.proc is not None:
            await asyncio.wait_for(self.proc.wait(), 10.0)


class ChaosCluster:
    def __init__(
        self,
        root: Path,
        size: int = 3,
        raft: dict[str, Any] | None = None,
        http: dict[str, Any] | None = None,
        snapshot_stagger: int = 0,
    ) -> None:
        """``snapshot_stagger``: node i snapshots every ``snapshot_threshold + i * stagger``
        entries, so that the nodes do not all compact the same entries at the same moment
        (each compacts at once, at its applied index, so an entry applied just before a
        snapshot may be compacted before the event collector reads it)."""
        self.root = root
        self.ids = [f"n{i + 1}" for i in range(size)]
        pairs = [(a, b) for a in self.ids for b in self.ids if a != b]
        ports = iter(free_ports(2 * size + 2 * len(pairs)))
        real = {nid: (next(ports), next(ports)) for nid in self.ids}  # (http, raft)
        via = {pair: (next(ports), next(ports)) for pair in pairs}
        channels = []
        for (a, b), (http_port, raft_port) in via.items():
            channels.append((link_name(a, b), raft_port, real[b][1]))
            channels.append((link_name(a, b), http_port, real[b][0]))
        self.proxy = Proxy(channels, root / "proxy.log")
        command = [sys.executable, "-m", "raft3d", "serve"]
        self.nodes: dict[str, NodeProcess] = {}
        for i, nid in enumerate(self.ids):
            raft_table = dict(raft or {})
            if snapshot_stagger and "snapshot_threshold" in raft_table:
                raft_table["snapshot_threshold"] += i * snapshot_stagger
            tables = "".join(
                f"\n[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                for name, values in (("raft", raft_table), ("http", http or {}))
            )
            members = ""
            for other in self.ids:
                http_port, raft_port = real[nid] if other == nid else via[(nid, other)]
                members += (
                    f'\n[[cluster.members]]\nid = "{other}"\nhttp = "127.0.0.1:{http_port}"\n'
                    f'raft = "127.0.0.1:{raft_port}"\n'
                )
            conf = root / f"{nid}.toml"
            conf.write_text(
                f'[node]\nid = "{nid}"\nhttp = "127.0.0.1:{real[nid][0]}"\n'
                f'raft = "127.0.0.1:{real[nid][1]}"\ndata_dir = "{root / nid}"\n\n'
                f'[cluster]\nsecret = "{SECRET}"\n{members}{tables}'
            )
            self.nodes[nid] = NodeProcess(
                nid, real[nid][0], real[nid][1], conf, root / nid, root / f"{nid}.log", command
            )

    async def start(self) -> None:
        await self.proxy.start()
        for node in self.nodes.values():
            node.start()

    def stop(self) -> None:
        """Stop every process this cluster started, by PID. Safe to call more than once."""
        for node in self.nodes.values():
            if node.alive:
                node.kill()  # SIGKILL works on a stopped (SIGSTOP) process too
        self.proxy.kill()

    def links_between(self, group: Sequence[str], others: Sequence[str]) -> list[str]:
        """Every link from ``group`` to ``others`` and back."""
        return [link_name(a, b) for a in group for b in others] + [
            link_name(b, a) for a in group for b in others
        ]
