"""Per-connection limits for the HTTP listener: a connection cap and a header read timeout.

aiohttp closes idle keep-alive connections itself (``keepalive_timeout``), but it has no
limit on open connections and no deadline for a request head: a client that sends one header
byte at a time (slowloris), or simply opens thousands of sockets, holds file descriptors until
the node cannot accept anyone. ``ConnectionGuard`` sits between the listening socket and
aiohttp's protocol:

- Over ``max_connections`` a new connection is answered ``503`` (JSON, ``Connection: close``)
  without reaching aiohttp, half-closed, and dropped after a short linger; refusals are logged
  at most once per ``LOG_INTERVAL_S`` with a count.
- A request head (request line and headers) must arrive within ``header_timeout_s`` of its first
  byte; otherwise the connection gets ``408`` (JSON) and is closed. The clock stops when the
  app starts handling the request (``track_requests``, the outermost middleware, or the
  node app's one middleware when the guard is its ``GUARD_KEY``): body reads and slow
  handlers are not the head's business.

``GuardedSite`` is aiohttp's ``TCPSite`` with the guard in front.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler

from raft3d.api import headers
from raft3d.api.errors import RETRY_AFTER_S, error_body

log = logging.getLogger("raft3d.http")

LOG_INTERVAL_S = 10.0
# A refused connection is kept this long after its answer so that the client reads the answer
# rather than a reset; at most MAX_LINGERING of them at once (the rest are closed at once).
REFUSED_LINGER_S = 1.0
MAX_LINGERING = 64


def _canned_response(status: str, code: str, message: str, node_id: str, extra: str = "") -> bytes:
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{headers.NODE}: {node_id}\r\n"
        f"{extra}\r\n"
    )
    return head.encode("latin-1") + body


class _RateLimitedLog:
    """One log line per interval: the first event at once, later ones counted into the next."""

    def __init__(self, level: int, interval_s: float) -> None:
        self._level = level
        self._interval = interval_s
        self._last = float("-inf")
        self._suppressed = 0

    def event(self, now: float, message: str, *args: object) -> None:
        if now - self._last < self._interval:
            self._suppressed += 1
            return
        suffix = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        log.log(self._level, message + suffix, *args)
        self._last = now
        self._suppressed = 0


class ConnectionGuard:
    def __init__(self, node_id: str, *, max_connections: int, header_timeout_s: float) -> None:
        self.node_id = node_id
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.open_connections = 0
        self.refused_total = 0
        self.header_timeouts_total = 0
        self._lingering = 0
        self._by_transport: dict[asyncio.BaseTransport, _GuardedConnection] = {}
        # Called whenever request bytes arrive (the loop-lag monitor's poke).
        self.on_activity: Callable[[], None] | None = None
        self._refusal_log = _RateLimitedLog(logging.WARNING, LOG_INTERVAL_S)
        self._timeout_log = _RateLimitedLog(logging.INFO, LOG_INTERVAL_S)
        self.over_capacity_response = _canned_response(
            "503 Service Unavailable",
            "too_many_connections",
            f"node {node_id} has {max_connections} open connections, its limit; try again",
            node_id,
            f"{headers.RETRY_AFTER}: {RETRY_AFTER_S}\r\n",
        )
        self.header_timeout_response = _canned_response(
            "408 Request Timeout",
            "header_timeout",
            f"the request head did not arrive within {header_timeout_s:g} s",
            node_id,
        )

    def protocol_factory(
        self, inner: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's protocol factory (``runner.server``) for ``loop.create_server``."""
        return lambda: _GuardedConnection(self, inner)

    def request_started(self, request: web.Request) -> _GuardedConnection | None:
        """The app starts handling ``request``: its connection's head clock stops until
        ``request_finished`` on what this returns (None: not a guarded connection)."""
        transport = request.transport
        conn = None if transport is None else self._by_transport.get(transport)
        if conn is not None:
            conn.request_started()
        return conn

    @web.middleware
    async def track_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost middleware: stops the head clock while the app handles a request (the
        node's app does this in its one middleware instead: ``GUARD_KEY``)."""
        conn = self.request_started(request)
        if conn is None:
            return await handler(request)
        try:
            return await handler(request)
        finally:
            conn.request_finished()

    # -- called by connections ----------------------------------------------------------

    def _admit(self, conn: _GuardedConnection, transport: asyncio.BaseTransport) -> bool:
        if self.open_connections >= self.max_connections:
            self.refused_total += 1
            self._refusal_log.event(
                asyncio.get_running_loop().time(),
                "http connection refused node=%s open=%d limit=%d refused_total=%d",
                self.node_id,
                self.open_connections,
                self.max_connections,
                self.refused_total,
            )
            return False
        self.open_connections += 1
        self._by_transport[transport] = conn
        return True

    def _release(self, transport: asyncio.BaseTransport) -> None:
        if self._by_transport.pop(transport, None) is not None:
            self.open_connections -= 1

    def _header_timed_out(self) -> None:
        self.header_timeouts_total += 1
        self._timeout_log.event(
            asyncio.get_running_loop().time(),
            "http connection closed: request head not received within %gs node=%s total=%d",
            self.header_timeout_s,
            self.node_id,
            self.header_timeouts_total,
        )


class _GuardedConnection(asyncio.Protocol):
    """Forwards every protocol event to aiohttp's handler, enforcing the guard's limits."""

    def __init__(self, guard: ConnectionGuard, inner_factory: Callable[[], asyncio.Protocol]):
        self._guard = guard
        self._inner_factory = inner_factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = 0
        self._lingering = False
        # Loop time of the first byte of a head not yet handled. The head's timer is not
        # cancelled when a request starts (arming one per request on a keep-alive connection
        # cost a timer's creation and cancellation on every request): it looks at this when
        # it fires, and is armed again for what is left of a newer head's time.
        self._head_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        if self._guard._admit(self, transport):
            self._inner = self._inner_factory()
            self._inner.connection_made(transport)
            return
        transport.write(self._guard.over_capacity_response)
        if self._guard._lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()  # sends what was written, then closes
            return
        transport.write_eof()  # the client sees the answer and the end of it
        self._lingering = True
        self._guard._lingering += 1
        self._timer = asyncio.get_running_loop().call_later(REFUSED_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return  # a refused connection: its request is read and dropped
        if self._guard.on_activity is not None:
            self._guard.on_activity()
        if self._in_request == 0 and self._head_since is None:
            loop = asyncio.get_running_loop()
            self._head_since = loop.time()
            if self._timer is None:
                self._timer = loop.call_later(self._guard.header_timeout_s, self._head_timed_out)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            if self._transport is not None:
                self._transport.close()
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lingering:
            self._lingering = False
            self._guard._lingering -= 1
        if self._transport is not None:
            self._guard._release(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def request_started(self) -> None:
        self._in_request += 1
        self._head_since = None

    def request_finished(self) -> None:
        self._in_request -= 1

    def _head_timed_out(self) -> None:
        self._timer = None
        transport = self._transport
        since = self._head_since
        if since is None or self._in_request or transport is None or transport.is_closing():
            return  # no head pending: the next one's first byte arms the timer again
        loop = asyncio.get_running_loop()
        left = since + self._guard.header_timeout_s - loop.time()
        if left > 0:  # the head pending now began after this timer was armed
            self._timer = loop.call_later(left, self._head_timed_out)
            return
        self._guard._header_timed_out()
        transport.write(self._guard.header_timeout_response)
        transport.close()


class GuardedSite(web.BaseSite):
    """A TCP listener for ``runner`` with ``guard`` in front of every connection."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
        reuse_port: bool = False,
    ) -> None:
        """``reuse_port``: share the port with other processes that set it too (the node's
        HTTP fronts); the kernel spreads new connections among them."""
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard
        self._reuse_port = reuse_port
        self.bound_port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner was set up
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
        )
        if self._server.sockets:
            self.bound_port = self._server.sockets[0].getsockname()[1]
