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


def peer_certificate_name(transport: asyncio.BaseTransport) -> str | None:
    """The CN of the verified certificate the other side presented; None without TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""
