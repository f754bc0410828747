"""Socket options every peer connection gets, in either direction."""

from __future__ import annotations

import asyncio
import socket


def tune_socket(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle (Raft messages are small and latency-bound) and enable keepalive."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:  # not a TCP socket: nothing to tune
        pass
