"""The link proxy: bytes flow both ways, ``reset`` breaks connections, ``blackhole`` holds
them silent until healed, and ``watch`` sees the bytes a dialer sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.procs import free_ports

from .cluster import Proxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[Proxy, int]]:
    listen, target = free_ports(2)
    server = await asyncio.start_server(_echo, "127.0.0.1", target)
    proxy = Proxy([("a>b", listen, target)], tmp_path / "proxy.log")
    try:
        await proxy.start()
        yield proxy, listen
    finally:
        proxy.kill()
        await proxy.wait()
        server.close()
        await server.wait_closed()


async def _roundtrip(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    finally:
        writer.close()


async def test_bytes_flow_both_ways_and_are_counted(proxied: tuple[Proxy, int]) -> None:
    proxy, port = proxied
    watching = asyncio.create_task(proxy.watch(["a>b"], 5000, timeout=10.0))
    assert await _roundtrip(port, b"x" * 6000) == b"x" * 6000
    assert await watching


async def test_reset_breaks_connections_until_healed(proxied: tuple[Proxy, int]) -> None:
    proxy, port = proxied
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 5.0) == b"ping"
    await proxy.block(["a>b"], "reset")
    assert await asyncio.wait_for(reader.read(), 5.0) == b""  # the open connection broke
    writer.close()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _roundtrip(port, b"new")  # and a new one is refused
    await proxy.heal()
    assert await _roundtrip(port, b"again") == b"again"


async def test_blackhole_holds_bytes_until_healed(proxied: tuple[Proxy, int]) -> None:
    proxy, port = proxied
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await proxy.block(["a>b"], "blackhole")
    writer.write(b"held")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.5)  # silence, no error
    assert not await proxy.watch(["a>b"], 1, timeout=0.2)
    await proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(4), 5.0) == b"held"
    writer.close()
