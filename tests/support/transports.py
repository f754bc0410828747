"""Real transports on loopback sockets for tests: ``Cluster`` starts a few transports that
know each other, records what each delivers and stops them all; ``message`` builds numbered
test messages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any

import uvloop

from raft3d.consensus.types import Entry, Message, MsgType
from raft3d.transport import Transport
from tests.support.waiting import eventually

LOCAL = "127.0.0.1"
SECRET = b"transport-test-cluster-secret"
NOWHERE = (LOCAL, 0)  # placeholder until the real port is known; dialing it is refused


def message(frm: str, to: str, n: int) -> Message:
    """A distinct, non-trivial message: n is carried in several fields."""
    return Message(
        MsgType.APP,
        to=to,
        frm=frm,
        term=3,
        log_term=2,
        index=n,
        entries=[Entry(n + 1, 3, f"entry-{n}".encode())],
        commit=n // 2,
    )


class Node:
    def __init__(self, transport: Transport, inbox: list[Message]) -> None:
        self.transport = transport
        self.inbox = inbox
        self.peer_events: list[tuple[str, bool]] = []

    @property
    def id(self) -> str:
        return self.transport.node_id

    @property
    def port(self) -> int:
        return self.transport.port


class Cluster:
    """Transports on port 0 that learn each other's ports after starting; stops them all."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.errors: list[dict[str, Any]] = []

    async def __aenter__(self) -> Cluster:
        # Anything the loop reports (a crashed callback, an unretrieved exception) fails the test.
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: self.errors.append(ctx))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in self.nodes.values():
            await node.transport.stop()
        asyncio.get_running_loop().set_exception_handler(None)

    async def add(
        self,
        node_id: str,
        peers: list[str],
        *,
        port: int = 0,
        secret: bytes = SECRET,
        on_message: Callable[[Message], None] | None = None,
        **options: Any,
    ) -> Node:
        inbox: list[Message] = []
        options.setdefault("backoff_max", 0.2)
        node = Node(
            Transport(
                node_id,
                (LOCAL, port),
                {peer: NOWHERE for peer in peers},
                secret,
                on_message or inbox.append,
                on_peer_change=lambda peer, up: node.peer_events.append((peer, up)),
                **options,
            ),
            inbox,
        )
        await node.transport.start()
        self.nodes[node_id] = node
        return node

    def wire_up(self) -> None:
        """Tell every node where each of its configured peers listens."""
        for node in self.nodes.values():
            for peer in node.transport.peers:
                if peer in self.nodes:
                    node.transport.set_peer_address(peer, (LOCAL, self.nodes[peer].port))

    async def connected(self) -> None:
        pairs = [
            (n, peer)
            for n in self.nodes.values()
            for peer in n.transport.peers
            if peer in self.nodes
        ]
        await eventually(lambda: all(n.transport.reachable(peer) for n, peer in pairs))


def counter_changes(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def only_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


def run_on_uvloop(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    uvloop.run(scenario())
