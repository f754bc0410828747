"""``Transport``: Raft messages between node processes over authenticated TCP.

Each node dials one persistent outbound connection per peer and sends only on it; it
receives on the inbound connections its peers dialed. ``send`` never blocks: messages go
into the peer's bounded queue and a per-peer task writes them out in batches.
See ``wire`` for the protocol and ``stats`` for what is counted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping

from raft3d.consensus.types import Message
from raft3d.transport import stats, wire
from raft3d.transport.inbound import InboundConnection
from raft3d.transport.outbound import LinkSettings, PeerLink
from raft3d.transport.proposals import Forwarding, PeerMessage

log = logging.getLogger(__name__)

_CLOSE_WAIT = 1.0  # aborted connections report closing on the next loop iteration


def parse_address(text: str) -> tuple[str, int] | None:
    """("host", port) from "host:port" (port 1-65535), or None."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


class Transport:
    def __init__(
        self,
        node_id: str,
        listen: tuple[str, int],
        peers: Mapping[str, tuple[str, int]],
        secret: bytes,
        on_message: Callable[[Message], None],
        *,
        max_frame_bytes: int = 8 * 1024 * 1024,
        send_queue_limit: int = 4096,
        on_peer_change: Callable[[str, bool], None] | None = None,
        handshake_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        write_stall_timeout: float = 10.0,
        backoff_min: float = 0.02,
        backoff_max: float = 1.0,
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        local_info: Callable[[], wire.HandshakeInfo | None] | None = None,
        on_peer_info: Callable[[str, wire.HandshakeInfo], None] | None = None,
        accept_unknown: Callable[[], bool] | None = None,
        on_forward: Callable[[Forwarding], None] | None = None,
    ) -> None:
        """``ssl_server``/``ssl_client``: mutual TLS for inbound and outbound connections (both
        or neither); the peer's certificate must then name the node id it claims.

        ``local_info`` is what this node says about itself in handshakes; a peer whose info
        names another cluster is refused (``cluster_id_mismatch``), the others' info goes to
        ``on_peer_info``. ``accept_unknown``: while it returns True, dialers that are not peers
        (yet) are challenged too, and accepted if they authenticate (a node that joins, or
        whose configuration is behind, is contacted by members it does not know).

        ``on_forward`` gets the forwarded proposals and answers (``proposals``) that arrive;
        without it they are dropped as malformed."""
        if not node_id:
            raise ValueError("node_id must not be empty")
        if not secret:
            raise ValueError("the cluster secret must not be empty")
        if max_frame_bytes < 1024:
            raise ValueError("max_frame_bytes must be at least 1024")
        if send_queue_limit < 1:
            raise ValueError("send_queue_limit must be at least 1")
        if (ssl_server is None) != (ssl_client is None):
            raise ValueError("mutual TLS needs both ssl_server and ssl_client")
        self.node_id = node_id
        self.secret = secret
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout = handshake_timeout
        self.stats = stats.TransportStats()
        self.deliver = on_message
        self.deliver_forward = on_forward
        self._listen = listen
        self._on_peer_change = on_peer_change
        self._ssl_server = ssl_server
        self._local_info = local_info
        self._on_peer_info = on_peer_info
        self.accept_unknown = accept_unknown
        self._mismatch_logged: set[str] = set()
        self._settings = settings = LinkSettings(
            node_id=node_id,
            secret=secret,
            max_frame_bytes=max_frame_bytes,
            queue_limit=send_queue_limit,
            handshake_timeout=handshake_timeout,
            connect_timeout=connect_timeout,
            write_stall_timeout=write_stall_timeout,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            ssl=ssl_client,
            local_info=local_info,
            on_peer_info=self.peer_info,
        )
        self._links = {
            peer_id: PeerLink(peer_id, address, settings, self.stats, self._peer_changed)
            for peer_id, address in peers.items()
            if peer_id != node_id
        }
        self._server: asyncio.Server | None = None
        self._link_tasks: dict[str, asyncio.Task[None]] = {}
        self._inbound: set[InboundConnection] = set()
        self._inbound_by_peer: dict[str, InboundConnection] = {}
        self._no_inbound = asyncio.Event()
        self._no_inbound.set()
        self._stopping = False
        self._port: int | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("transport already started")
        loop = asyncio.get_running_loop()
        host, port = self._listen
        self._stopping = False
        self._server = await loop.create_server(
            self._accept,
            host,
            port,
            ssl=self._ssl_server,
            ssl_handshake_timeout=self.handshake_timeout if self._ssl_server else None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        for peer_id in self._links:
            self._start_link(peer_id)
        log.info("transport %s listening on %s:%s", self.node_id, host, self._port)

    async def stop(self) -> None:
        """Close the listener and every connection and end every task; idempotent."""
        self._stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in self._link_tasks.values():
            task.cancel()
        await asyncio.gather(*self._link_tasks.values(), return_exceptions=True)
        self._link_tasks = {}
        for conn in list(self._inbound):
            conn.close()
        try:
            async with asyncio.timeout(_CLOSE_WAIT):
                await self._no_inbound.wait()
        except TimeoutError:
            log.warning("%d inbound connections did not report closing", len(self._inbound))
        if server is not None:
            await server.wait_closed()

    @property
    def port(self) -> int:
        """The bound listening port (useful with port 0)."""
        if self._port is None:
            raise RuntimeError("transport not started")
        return self._port

    # ------------------------------------------------------------ sending

    def send(self, msg: PeerMessage) -> bool:
        """Queue ``msg`` for ``msg.to``; never blocks, never raises. Drops are counted;
        False for a message dropped here (unknown peer, queue full): never sent."""
        link = self._links.get(msg.to)
        if link is None:
            self.stats.drop(stats.UNKNOWN_PEER)
            return False
        if not link.enqueue(msg):
            self.stats.drop(stats.QUEUE_FULL)
            return False
        return True

    def flush(self) -> None:
        """Write every link's queued messages now (where its connection is idle), instead of
        at the end of this turn of the loop."""
        for link in self._links.values():
            link.flush_now()

    def set_peer_address(self, peer: str, address: tuple[str, int]) -> None:
        """Dial ``peer`` at ``address`` from now on (an established connection is kept).

        Lets nodes that all listen on port 0 learn each other's ports after ``start``.
        Raises ``KeyError`` for a node that is not a configured peer.
        """
        self._links[peer].redial(address)

    def connect_peer(self, peer: str, raft_addr: str) -> bool:
        """Link to ``peer`` at ``raft_addr`` ("host:port") from now on: a new peer gets a link
        (dialed at once if the transport runs), a known one is redialed if it moved.
        False (nothing changes) if ``raft_addr`` is not a usable address."""
        address = parse_address(raft_addr)
        if address is None or peer == self.node_id:
            return False
        link = self._links.get(peer)
        if link is not None:
            if link.address != address:
                link.redial(address)
            return True
        self._links[peer] = PeerLink(peer, address, self._settings, self.stats, self._peer_changed)
        if self._server is not None:
            self._start_link(peer)
        log.info("transport %s linked to %s at %s", self.node_id, peer, raft_addr)
        return True

    def drop_peer(self, peer: str) -> None:
        """Forget ``peer``: its queue is discarded, its connections closed, and it is refused
        as a stranger from now on (until linked again)."""
        link = self._links.pop(peer, None)
        task = self._link_tasks.pop(peer, None)
        if task is not None:
            task.cancel()
        inbound = self._inbound_by_peer.get(peer)
        if inbound is not None:
            inbound.close()
        if link is not None:
            if link.connected:
                link.connected = False
                self._peer_changed(peer, False)
            log.info("transport %s dropped peer %s", self.node_id, peer)

    def reachable(self, peer: str) -> bool:
        """True while an authenticated outbound connection to ``peer`` is up."""
        link = self._links.get(peer)
        return link is not None and link.connected

    def queued(self, peer: str) -> int:
        """Messages waiting in ``peer``'s send queue."""
        link = self._links.get(peer)
        return 0 if link is None else link.queued

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(self._links)

    # ------------------------------------------------------------ counters

    @property
    def dropped(self) -> Mapping[str, int]:
        """Drop counts by reason; every reason in ``stats.DROP_REASONS`` is present."""
        return self.stats.dropped

    @property
    def sent(self) -> int:
        return self.stats.sent

    @property
    def received(self) -> int:
        return self.stats.received

    # ------------------------------------------------------------ AcceptorContext

    @property
    def accepting(self) -> bool:
        return not self._stopping

    def is_peer(self, node_id: str) -> bool:
        if node_id in self._links:
            return True
        return self.accept_unknown is not None and node_id != self.node_id and self.accept_unknown()

    def handshake_info(self) -> wire.HandshakeInfo | None:
        return None if self._local_info is None else self._local_info()

    def peer_info(self, peer_id: str, info: wire.HandshakeInfo | None) -> bool:
        if wire.clusters_differ(self.handshake_info(), info):
            assert info is not None
            if peer_id not in self._mismatch_logged:
                self._mismatch_logged.add(peer_id)
                log.warning(
                    "refusing peer %s: it belongs to cluster %s, this node to cluster %s",
                    peer_id,
                    info.cluster_id,
                    self.handshake_info().cluster_id,  # type: ignore[union-attr]
                )
            return False
        if info is not None and self._on_peer_info is not None:
            try:
                self._on_peer_info(peer_id, info)
            except Exception:
                log.exception("on_peer_info raised for %s", peer_id)
        return True

    def inbound_authenticated(self, peer_id: str, conn: InboundConnection) -> None:
        # A peer dials one connection at a time, so an older one from it is stale
        # (say, half-open after the peer restarted): drop it.
        previous = self._inbound_by_peer.get(peer_id)
        self._inbound_by_peer[peer_id] = conn
        if previous is not None and previous is not conn:
            previous.close()

    def inbound_closed(self, conn: InboundConnection) -> None:
        self._inbound.discard(conn)
        if conn.peer_id is not None and self._inbound_by_peer.get(conn.peer_id) is conn:
            del self._inbound_by_peer[conn.peer_id]
        if not self._inbound:
            self._no_inbound.set()

    # ------------------------------------------------------------ internals

    def _start_link(self, peer_id: str) -> None:
        self._link_tasks[peer_id] = asyncio.create_task(
            self._links[peer_id].run(), name=f"raft3d-transport-{self.node_id}->{peer_id}"
        )

    def _accept(self) -> InboundConnection:
        conn = InboundConnection(self)
        self._inbound.add(conn)
        self._no_inbound.clear()
        return conn

    def _peer_changed(self, peer_id: str, up: bool) -> None:
        if self._stopping or self._on_peer_change is None:
            return
        try:
            self._on_peer_change(peer_id, up)
        except Exception:
            log.exception("on_peer_change raised for %s", peer_id)
