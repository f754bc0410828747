"""Messages per second through ``raft3d.transport`` over loopback.

Two transports in one process; node "a" sends small heartbeat-sized messages to "b" as fast
as its queue accepts them (never overfilling it) and the clock stops when "b" has received
them all. Both ends share one event loop and one core, so this measures the per-message cost
of the whole path: encode, MAC, batch write, read, verify, decode, deliver.

    .venv/bin/python benchmarks/transport_bench.py [--messages N] [--loop asyncio|uvloop] [--tls]

``--tls`` adds mutual TLS (demo certificates made in a temporary directory) under the MAC.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop

from raft3d.consensus.types import Message, MsgType
from raft3d.security.certs import NodeSpec, make_demo_pki
from raft3d.security.settings import TlsSettings
from raft3d.security.tls import TlsContexts
from raft3d.transport import Transport

SECRET = b"benchmark-cluster-secret"
QUEUE_LIMIT = 4096


async def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.001)


def tls_pair(directory: Path) -> tuple[TlsContexts, TlsContexts]:
    make_demo_pki(directory, [NodeSpec("a", ("127.0.0.1",)), NodeSpec("b", ("127.0.0.1",))])

    def contexts(node: str) -> TlsContexts:
        files = TlsSettings(
            directory / "ca.pem", directory / f"{node}.pem", directory / f"{node}-key.pem"
        )
        return TlsContexts(files, node)

    return contexts("a"), contexts("b")


async def run(messages: int, tls: tuple[TlsContexts, TlsContexts] | None = None) -> float:
    received = 0

    def on_message(_msg: Message) -> None:
        nonlocal received
        received += 1

    placeholder = ("127.0.0.1", 0)  # real ports are known once both listen
    a = Transport(
        "a",
        ("127.0.0.1", 0),
        {"b": placeholder},
        SECRET,
        lambda _m: None,
        send_queue_limit=QUEUE_LIMIT,
        ssl_server=tls[0].peer_server if tls else None,
        ssl_client=tls[0].peer_client if tls else None,
    )
    b = Transport(
        "b",
        ("127.0.0.1", 0),
        {"a": placeholder},
        SECRET,
        on_message,
        send_queue_limit=QUEUE_LIMIT,
        ssl_server=tls[1].peer_server if tls else None,
        ssl_client=tls[1].peer_client if tls else None,
    )
    await a.start()
    await b.start()
    a.set_peer_address("b", ("127.0.0.1", b.port))
    b.set_peer_address("a", ("127.0.0.1", a.port))
    try:
        await wait_for(lambda: a.reachable("b"), 10)
        msg = Message(MsgType.HEARTBEAT, to="b", frm="a", term=7, commit=1234)
        started = time.perf_counter()
        queued = 0
        while queued < messages:
            room = QUEUE_LIMIT - a.queued("b")
            for _ in range(min(room, messages - queued)):
                a.send(msg)
            queued += min(room, messages - queued)
            await asyncio.sleep(0)
        await wait_for(lambda: received >= messages, 120)
        elapsed = time.perf_counter() - started
    finally:
        await a.stop()
        await b.stop()
    assert a.dropped["queue_full"] == 0, a.dropped
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--tls", action="store_true", help="mutual TLS under the MAC")
    args = parser.parse_args()
    runner: Callable[[Coroutine[Any, Any, float]], float] = (
        uvloop.run if args.loop == "uvloop" else asyncio.run
    )
    with tempfile.TemporaryDirectory() as directory:
        tls = tls_pair(Path(directory)) if args.tls else None
        rate = runner(run(args.messages, tls))
    how = ", mutual TLS" if args.tls else ""
    print(f"{args.messages} messages, {args.loop} loop{how}: {rate:,.0f} messages/s")


if __name__ == "__main__":
    main()
