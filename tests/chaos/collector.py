"""Collecting every node's event log while the run goes on, and each node's final state.

Nodes compact their logs after each snapshot, so the collector reads every node's
``GET /api/v1/events`` continuously (``?consistency=local``: a node cut off from the leader
still shows what it applied). The merged log keeps each index once, with an outcome when any
node reported one; per node only digests are kept, to compare nodes with each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

from .history import History, NodeEvent, json_digest

PAGE = 1000
IDLE_POLL_S = 0.1


def core_digest(event: dict[str, Any]) -> str:
    """What must be equal on every node that holds the entry: all but the outcome."""
    return json_digest(
        [event.get("index"), event.get("term"), event.get("type"), event.get("payload")]
    )


class EventCollector:
    def __init__(self, urls: dict[str, str], history: History) -> None:
        self.urls = urls
        self.history = history
        self.cursor = dict.fromkeys(urls, 0)
        self.skipped: dict[str, list[tuple[int, int]]] = {n: [] for n in urls}
        for node in urls:
            history.node_events.setdefault(node, {})

    def record(self, node: str, event: dict[str, Any]) -> None:
        index = int(event["index"])
        outcome = event.get("outcome")
        self.history.node_events[node][index] = NodeEvent(
            core_digest(event), None if outcome is None else json_digest(outcome)
        )
        merged = self.history.events.get(index)
        if merged is None or (merged.get("outcome") is None and outcome is not None):
            self.history.events[index] = event

    async def poll(self, session: aiohttp.ClientSession, node: str) -> bool:
        """Read one page from ``node``; True when the page was full (more may be waiting)."""
        after = self.cursor[node]
        url = f"{self.urls[node]}/api/v1/events?after={after}&limit={PAGE}&consistency=local"
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return False
        if not isinstance(body, dict):
            return False
        if status == 410 or (status == 200 and body.get("first_index", 1) > after + 1):
            first = int(
                body.get("first_index")
                or body.get("error", {}).get("details", {}).get("first_index", after + 1)
            )
            if first > after + 1:  # compacted before we read it: another node may have it
                self.skipped[node].append((after + 1, first - 1))
                self.cursor[node] = first - 1
            return True
        if status != 200:
            return False
        events = body.get("events") or []
        for event in events:
            self.record(node, event)
        if events:
            self.cursor[node] = max(self.cursor[node], int(events[-1]["index"]))
        return len(events) == PAGE

    async def follow(self, session: aiohttp.ClientSession, node: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            full = await self.poll(session, node)
            if not full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), IDLE_POLL_S)  # polling interval

    async def drain(
        self, session: aiohttp.ClientSession, upto: dict[str, int], rounds: int = 200
    ) -> None:
        """Read each node until its cursor reaches ``upto[node]`` (bounded)."""
        for _ in range(rounds):
            behind = [n for n in self.urls if self.cursor[n] < upto.get(n, 0)]
            if not behind:
                return
            for node in behind:
                await self.poll(session, node)


async def final_state(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    """One node's whole farm, every list read at the same applied index; None if not stable."""
    lists: dict[str, Any] = {}
    indexes = set()
    for target, path in (
        ("printers", "printers"),
        ("filaments", "filaments"),
        ("jobs", "print_jobs"),
    ):
        try:
            async with session.get(f"{url}/api/v1/{path}?consistency=local") as resp:
                if resp.status != 200:
                    return None
                lists[target] = await resp.json()
                indexes.add(int(resp.headers["X-Raft3D-Applied-Index"]))
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError):
            return None
    if len(indexes) != 1:
        return None
    return {"applied_index": indexes.pop(), **lists}
