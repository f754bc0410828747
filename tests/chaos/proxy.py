"""A TCP proxy of our own between peers, so the nemesis can cut links one direction at a time.

Every node dials each peer itself and sends only on that connection (``raft3d.transport``:
one outbound connection per peer, inbound ones are only read after the handshake). So the
chaos harness writes node A's config with peer B's raft (and http) address pointing at a
proxy port of the link ``A>B``: everything A sends to B crosses that link, and nothing B
sends to A does. Blocking ``A>B`` alone is a one-way partition.

Run as its own process (so a busy harness does not delay peer traffic)::

    python -m tests.chaos.proxy --link n1>n2=LISTEN:TARGET [--link ...]

It listens on 127.0.0.1 only, prints ``{"ready": true}`` and then answers one JSON line on
stdout per JSON command line on stdin:

- ``{"op": "block", "links": [...], "mode": "reset" | "blackhole"}``: ``reset`` aborts the
  link's connections and refuses new ones (the sender sees the connection break);
  ``blackhole`` stops moving bytes both ways and holds new connections unanswered (the
  sender sees silence, as with a real partition; held bytes flow late once healed).
- ``{"op": "heal", "links": [...]}`` (``[]`` heals all).
- ``{"op": "watch", "links": [...], "bytes": N, "timeout": S}``: answers once ``N`` more
  bytes went through those links from their dialers (or at the timeout), with ``"reached"``.
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field

HOST = "127.0.0.1"
MAX_BUFFER = 1 << 20  # bytes queued towards one side before the other side stops being read


class _Side(asyncio.Protocol):
    """One socket of a proxied connection; the bytes it reads go to its peer side."""

    def __init__(self, pipe: _Pipe, dialer_side: bool) -> None:
        self.pipe = pipe
        self.dialer_side = dialer_side
        self.transport: asyncio.Transport | None = None
        self.flow_paused = False  # our peer's socket is full: stop reading us

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=MAX_BUFFER)
        if self.pipe.closed:  # refused (a reset link) before the connection was made
            transport.abort()
            return
        if self.dialer_side:
            self.pipe.update_reading()  # nothing is read until the upstream side is connected

    def data_received(self, data: bytes) -> None:
        self.pipe.forward(self, data)

    def eof_received(self) -> bool:
        self.pipe.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.close()

    def pause_writing(self) -> None:
        other = self.pipe.other(self)
        if other is not None:
            other.flow_paused = True
            self.pipe.update_reading()

    def resume_writing(self) -> None:
        other = self.pipe.other(self)
        if other is not None:
            other.flow_paused = False
            self.pipe.update_reading()


@dataclass(eq=False)
class _Pipe:
    link: Link
    target: int
    dialer: _Side | None = None
    upstream: _Side | None = None
    closed: bool = False
    reading: dict[int, bool] = field(default_factory=dict)

    def other(self, side: _Side) -> _Side | None:
        return self.upstream if side is self.dialer else self.dialer

    def forward(self, side: _Side, data: bytes) -> None:
        other = self.other(side)
        if other is None or other.transport is None or self.closed:
            return
        if side.dialer_side:
            self.link.count(len(data))
        other.transport.write(data)

    def update_reading(self) -> None:
        blocked = self.link.blocked is not None
        for side in (self.dialer, self.upstream):
            if side is None or side.transport is None or side.transport.is_closing():
                continue
            want = not blocked and not side.flow_paused and self.upstream is not None
            if want and not side.transport.is_reading():
                side.transport.resume_reading()
            elif not want and side.transport.is_reading():
                side.transport.pause_reading()

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(
                lambda: _Side(self, dialer_side=False), HOST, self.target
            )
        except OSError:
            self.close()
            return
        if self.closed:
            upstream.transport.close()  # type: ignore[union-attr]
            return
        self.upstream = upstream
        self.update_reading()

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.link.pipes.discard(self)
        for side in (self.dialer, self.upstream):
            if side is not None and side.transport is not None:
                if abort:
                    side.transport.abort()
                else:
                    side.transport.close()


@dataclass(eq=False)
class Link:
    """The directed link ``src>dst``: one or more (listen port -> target port) channels."""

    name: str
    blocked: str | None = None  # None, "reset" or "blackhole"
    sent: int = 0
    pipes: set[_Pipe] = field(default_factory=set)
    waiting: list[_Pipe] = field(default_factory=list)  # accepted while blackholed
    connecting: set[asyncio.Task[None]] = field(default_factory=set)
    # (goal, future, links): done once the links together have carried ``goal`` bytes
    watchers: list[tuple[int, asyncio.Future[None], list[Link]]] = field(default_factory=list)

    def count(self, n: int) -> None:
        self.sent += n
        for goal, fut, watched in self.watchers:
            if not fut.done() and sum(link.sent for link in watched) >= goal:
                fut.set_result(None)

    def accept(self, target: int) -> asyncio.Protocol:
        pipe = _Pipe(self, target)
        side = _Side(pipe, dialer_side=True)
        pipe.dialer = side
        self.pipes.add(pipe)
        if self.blocked == "reset":
            pipe.close(abort=True)
        elif self.blocked == "blackhole":
            self.waiting.append(pipe)  # held unread (see connection_made) until healed
        else:
            self._connect(pipe)
        return side

    def _connect(self, pipe: _Pipe) -> None:
        task = asyncio.get_running_loop().create_task(pipe.connect())
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    def block(self, mode: str) -> None:
        self.blocked = mode
        for pipe in list(self.pipes):
            if mode == "reset":
                pipe.close(abort=True)
            else:
                pipe.update_reading()

    def heal(self) -> None:
        self.blocked = None
        waiting, self.waiting = self.waiting, []
        for pipe in waiting:
            if not pipe.closed:
                self._connect(pipe)
        for pipe in list(self.pipes):
            pipe.update_reading()


async def _serve(channels: list[tuple[str, int, int]]) -> None:
    loop = asyncio.get_running_loop()
    links: dict[str, Link] = {}
    servers = []
    for name, listen, target in channels:
        link = links.setdefault(name, Link(name))
        servers.append(
            await loop.create_server(
                lambda link=link, target=target: link.accept(target),  # type: ignore[misc]
                HOST,
                listen,
                reuse_address=True,
            )
        )
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _reply({"ready": True})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            op = command["op"]
            if op == "quit":
                _reply({"ok": True})
                return
            if op == "block":
                for name in command["links"]:
                    links[name].block(command["mode"])
                _reply({"ok": True})
            elif op == "heal":
                for name in command["links"] or list(links):
                    links[name].heal()
                _reply({"ok": True})
            elif op == "watch":
                watched = [links[name] for name in command["links"]]
                goal = sum(link.sent for link in watched) + int(command["bytes"])
                fut: asyncio.Future[None] = loop.create_future()
                for link in watched:
                    link.watchers.append((goal, fut, watched))
                try:
                    await asyncio.wait_for(fut, float(command["timeout"]))
                    reached = True
                except TimeoutError:
                    reached = False
                for link in watched:
                    link.watchers = [w for w in link.watchers if w[1] is not fut]
                _reply({"reached": reached, "bytes": sum(link.sent for link in watched)})
            else:
                _reply({"error": f"unknown op {op!r}"})
    finally:
        for server in servers:
            server.close()


def _reply(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _parse_channel(text: str) -> tuple[str, int, int]:
    name, _, ports = text.partition("=")
    listen, _, target = ports.partition(":")
    return name, int(listen), int(target)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.proxy")
    parser.add_argument("--link", action="append", default=[], help="NAME=LISTEN:TARGET")
    args = parser.parse_args(argv)
    asyncio.run(_serve([_parse_channel(text) for text in args.link]))


if __name__ == "__main__":
    main()
