"""A simulated network in virtual time: per-message random delay (hence reordering), loss,
duplication, and partitions (including one-way ones), all driven by the simulation's RNG."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from raft3d.consensus import Message, NodeId


@dataclass
class NetworkWeather:
    drop_rate: float = 0.0
    dup_rate: float = 0.0
    min_delay: int = 1
    max_delay: int = 1


class SimNetwork:
    def __init__(self, rng: random.Random, weather: NetworkWeather, wire_rate: float) -> None:
        self._rng = rng
        self.weather = weather
        self._wire_rate = wire_rate  # share of messages sent through the real wire codec
        self._queue: list[tuple[int, int, Message]] = []
        self._seq = 0
        self.blocked: set[tuple[NodeId, NodeId]] = set()  # (from, to) links that lose everything
        self.sent = 0
        self.delivered = 0

    def send(self, msg: Message, now: int) -> None:
        rng = self._rng
        weather = self.weather
        self.sent += 1
        if weather.drop_rate and rng.random() < weather.drop_rate:
            return
        if self._wire_rate and rng.random() < self._wire_rate:
            msg = Message.from_wire(msg.to_wire())
        copies = 2 if weather.dup_rate and rng.random() < weather.dup_rate else 1
        for _ in range(copies):
            delay = rng.randint(weather.min_delay, weather.max_delay)
            self._seq += 1
            heapq.heappush(self._queue, (now + delay, self._seq, msg))

    def due(self, now: int) -> list[Message]:
        """Messages arriving at ``now`` whose link is up, in arrival order."""
        out: list[Message] = []
        queue = self._queue
        blocked = self.blocked
        while queue and queue[0][0] <= now:
            msg = heapq.heappop(queue)[2]
            if not blocked or (msg.frm, msg.to) not in blocked:
                out.append(msg)
        self.delivered += len(out)
        return out

    def forget(self, node: NodeId) -> None:
        """Drop every message in flight from or to ``node``: the connections of a process
        that is gone (a restart with a new data directory is a new incarnation)."""
        self._queue = [item for item in self._queue if node not in (item[2].frm, item[2].to)]
        heapq.heapify(self._queue)

    def partition(self, groups: list[list[NodeId]]) -> None:
        """Cut every link between different groups (both directions)."""
        self.blocked = {
            (a, b) for g1 in groups for g2 in groups if g1 is not g2 for a in g1 for b in g2
        }

    def block_one_way(self, frm: NodeId, to: NodeId) -> None:
        self.blocked.add((frm, to))

    def heal(self) -> None:
        self.blocked = set()

    def in_flight(self) -> int:
        return len(self._queue)
