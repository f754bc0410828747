"""The nemesis: seeded faults, one at a time, each undone before the next.

Kinds: ``kill`` (SIGKILL, restart), ``pause`` (SIGSTOP, SIGCONT), ``restart_all``,
``isolate`` (one node cut off both ways: a minority and a majority), ``one_way`` (one directed
link cut), each partition as ``reset`` (connections break) or ``blackhole`` (silence), and
``snapshot_kill``: a follower is killed while the leader streams it an InstallSnapshot.

Extension point: ``MEMBERSHIP_FAULTS``: a fault registered there (an async function of the
nemesis and its random source returning a detail string) joins the draw with its weight in
runs with membership faults on (``--membership``). ``membership_faults`` registers the
membership changes of SPEC §6: leadership transfer, a learner added and promoted, a follower
removed and re-added with an empty data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from .cluster import ChaosCluster, link_name
from .history import Fault, History

FaultFn = Callable[["Nemesis", random.Random], Awaitable[str]]
MEMBERSHIP_FAULTS: dict[str, tuple[float, FaultFn]] = {}


class Nemesis:
    def __init__(
        self,
        cluster: ChaosCluster,
        history: History,
        seed: int,
        chunk_bytes: int,
        snapshots: bool = True,
        trailing: int = 0,
        membership: bool = False,
    ) -> None:
        """``snapshots``: whether the nodes snapshot (``snapshot_kill`` needs them to);
        ``trailing``: log entries a node keeps after its snapshot; ``membership``: whether
        the ``MEMBERSHIP_FAULTS`` join the draw."""
        self.membership = membership
        self.cluster = cluster
        self.history = history
        self.rng = random.Random(seed * 7919 + 17)
        self.chunk_bytes = chunk_bytes
        self.snapshots = snapshots
        self.trailing = trailing
        self.session: aiohttp.ClientSession | None = None
        self.stopping = asyncio.Event()  # the run is over: a fault in progress ends early
        self.down: set[str] = set()  # killed and not yet restarted
        self.paused: set[str] = set()

    async def status(self, node: str) -> dict[str, Any] | None:
        assert self.session is not None
        try:
            url = f"{self.cluster.nodes[node].url}/cluster/status"
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                body = await resp.json()
                return body if isinstance(body, dict) else None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None

    async def leader(self) -> str | None:
        for node in self.cluster.ids:
            if node in self.down or node in self.paused:
                continue
            status = await self.status(node)
            if status and status.get("role") == "leader":
                return node
        return None

    async def _hold(self, low: float, high: float) -> None:
        """Keep a fault in place for a random while (the fault's length, not a sync wait)."""
        await asyncio.sleep(self.rng.uniform(low, high))

    def _kill(self, node: str) -> None:
        self.cluster.nodes[node].kill()
        self.down.add(node)

    def _start(self, node: str) -> None:
        if not self.cluster.nodes[node].alive:
            self.cluster.nodes[node].start()
        self.down.discard(node)

    async def _target(self) -> str:
        leader = await self.leader()
        if leader is not None and self.rng.random() < 0.5:
            return leader
        return self.rng.choice(self.cluster.ids)

    # -- faults ------------------------------------------------------------------------------

    async def kill(self, rng: random.Random) -> str:
        node = await self._target()
        self._kill(node)
        try:
            await self._hold(0.3, 3.0)
        finally:
            self._start(node)
        return node

    async def pause(self, rng: random.Random) -> str:
        node = await self._target()
        self.cluster.nodes[node].pause()
        self.paused.add(node)
        try:
            await self._hold(0.3, 3.0)
        finally:
            self.cluster.nodes[node].resume()
            self.paused.discard(node)
        return node

    async def restart_all(self, rng: random.Random) -> str:
        for node in self.cluster.ids:
            self._kill(node)
        try:
            await self._hold(0.1, 1.0)
        finally:
            for node in self.cluster.ids:
                self._start(node)
        return "all"

    async def isolate(self, rng: random.Random) -> str:
        node = await self._target()
        others = [n for n in self.cluster.ids if n != node]
        mode = rng.choice(("reset", "blackhole"))
        links = self.cluster.links_between([node], others)
        await self.cluster.proxy.block(links, mode)
        try:
            await self._hold(0.5, 4.0)
        finally:
            await self.cluster.proxy.heal(links)
        return f"{node} {mode}"

    async def one_way(self, rng: random.Random) -> str:
        leader = await self.leader()
        a, b = rng.sample(self.cluster.ids, 2)
        if leader is not None and rng.random() < 0.6:
            other = rng.choice([n for n in self.cluster.ids if n != leader])
            a, b = (leader, other) if rng.random() < 0.5 else (other, leader)
        mode = rng.choice(("reset", "blackhole"))
        await self.cluster.proxy.block([link_name(a, b)], mode)
        try:
            await self._hold(0.5, 4.0)
        finally:
            await self.cluster.proxy.heal([link_name(a, b)])
        return f"{a}>{b} {mode}"

    async def snapshot_kill(self, rng: random.Random) -> str:
        """Kill a follower, let the others compact past its log, restart it and kill it again
        while the leader streams it the snapshot (seen as bytes on the links into it)."""
        leader = await self.leader()
        followers = [n for n in self.cluster.ids if n != leader and n not in self.paused]
        if leader is None or not followers:
            return "skipped: no leader"
        node = rng.choice(followers)
        status = await self.status(node)
        if status is None:
            return "skipped: follower did not answer"
        self._kill(node)
        try:
            behind = status["last_log_index"]
            deadline = time.monotonic() + 15.0
            while time.monotonic() < deadline and not self.stopping.is_set():
                # the others compact while the clients write
                snaps = [await self.status(n) for n in self.cluster.ids if n != node]
                if all(s and s["snapshot_index"] - self.trailing > behind for s in snaps):
                    break
                await asyncio.sleep(0.1)  # polling interval
            else:
                return f"{node}: no snapshot past its log in time"
            into = [link_name(n, node) for n in self.cluster.ids if n != node]
            log_path = self.cluster.nodes[node].log_path
            offset = log_path.stat().st_size if log_path.exists() else 0
            watching = asyncio.create_task(
                self.cluster.proxy.watch(into, 3 * self.chunk_bytes, timeout=10.0)
            )
            self._start(node)
            reached = await watching
            self._kill(node)
            installed = b"snapshot installed" in _read_from(log_path, offset)
            await self._hold(0.2, 1.0)
        finally:
            self._start(node)
        if not reached:
            return f"{node}: no transfer seen"
        return f"{node}: " + ("killed mid-transfer" if not installed else "installed before kill")

    # -- the loop ------------------------------------------------------------------------------

    def kinds(self) -> dict[str, tuple[float, FaultFn]]:
        kinds: dict[str, tuple[float, FaultFn]] = {
            "kill": (2.0, Nemesis.kill),
            "pause": (2.0, Nemesis.pause),
            "restart_all": (0.6, Nemesis.restart_all),
            "isolate": (2.0, Nemesis.isolate),
            "one_way": (2.0, Nemesis.one_way),
            "snapshot_kill": (1.2, Nemesis.snapshot_kill),
        }
        if not self.snapshots:
            del kinds["snapshot_kill"]
        if self.membership:
            kinds.update(MEMBERSHIP_FAULTS)
        return kinds

    async def run(self, stop: asyncio.Event, max_faults: int = 10_000) -> None:
        """Faults until ``stop``: first every kind once in a seeded order (so even a short run
        sees each), then weighted draws."""
        kinds = self.kinds()
        names = sorted(kinds)
        weights = [kinds[n][0] for n in names]
        first_round = self.rng.sample(names, len(names))
        assert self.session is not None, "set the nemesis' session before running it"
        self.stopping = stop
        for count in range(max_faults):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(0.5, 2.0))
                return  # the calm between faults, cut short by the end of the run
            if count < len(first_round):
                kind = first_round[count]
            else:
                kind = self.rng.choices(names, weights)[0]
            start = time.monotonic()
            detail = await kinds[kind][1](self, self.rng)
            self.history.faults.append(Fault(kind, start, time.monotonic(), detail))

    async def heal_all(self) -> None:
        for node in list(self.paused):
            self.cluster.nodes[node].resume()
        self.paused.clear()
        await self.cluster.proxy.heal()
        for node in self.cluster.ids:
            self._start(node)


def _read_from(path: Path, offset: int) -> bytes:
    """A node's log written since ``offset`` (a small file; read while the node is down)."""
    with path.open("rb") as log:
        log.seek(offset)
        return log.read()
