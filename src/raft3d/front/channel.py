"""The front's end of the node socket: requests multiplexed on one connection, and the
``NodePort`` the front's handlers talk to (``RemoteNode``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from raft3d.api.ports import EventPageView, NodePort, SnapshotFileInfo, SnapshotView
from raft3d.domain.results import Result
from raft3d.front import protocol
from raft3d.node.errors import NodeStoppedError
from raft3d.node.status import Membership, NodeStatus

log = logging.getLogger("raft3d.front")

# Observations are sent to the node in batches: at most this many, at most this old.
BATCH_SIZE = 256
FLUSH_INTERVAL_S = 0.2
CONNECT_RETRY_S = 0.05
READ_CHUNK = 256 * 1024


class NodeChannel:
    """One connection to the node process; ``call`` may be awaited by many tasks at once."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, front_index: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._index = front_index
        self._packer = protocol.packer()
        self._pending: dict[int, asyncio.Future[tuple[int, Any, Any]]] = {}
        self._next_id = 1
        self._observed: list[list[object]] = []
        self._flush: asyncio.TimerHandle | None = None
        self.applied_index = 0
        self.lost = asyncio.Event()
        self._reading = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def connect(cls, path: Path, front_index: int, timeout: float) -> NodeChannel:
        """Connect to the node's socket, retrying until ``timeout`` (the node may still be
        starting); raises ``OSError`` at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(path))
            except OSError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(CONNECT_RETRY_S)
            else:
                return cls(reader, writer, front_index)

    async def call(self, kind: int, *args: object) -> tuple[int, Any, Any]:
        """Send a request; return ``(answer kind, applied index, payload)``."""
        if self.lost.is_set():
            raise NodeStoppedError("the node process is gone")
        request_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[tuple[int, Any, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(self._packer.pack([kind, request_id, *args]))
            return await future
        finally:
            self._pending.pop(request_id, None)

    def observe(
        self, route: str, method: str, status: int, seconds: float, *, relayed: bool = False
    ) -> None:
        """Count one request this front answered, or ``relayed`` to the node's app (which
        counts it among its own requests); sent to the node within a flush interval."""
        self._observed.append([route, method, status, seconds, relayed])
        if len(self._observed) >= BATCH_SIZE:
            self.flush()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._observed and not self.lost.is_set():
            self._writer.write(self._packer.pack([protocol.OBSERVED, self._index, self._observed]))
        self._observed = []

    async def close(self) -> None:
        self.flush()
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def _read_loop(self) -> None:
        unpacker = protocol.unpacker()
        try:
            while chunk := await self._reader.read(READ_CHUNK):
                unpacker.feed(chunk)
                for frame in unpacker:
                    self._answer(frame)
        except (OSError, ValueError, protocol.ProtocolError) as exc:
            log.error("front %d: node socket failed: %s", self._index, exc)
        finally:
            self.lost.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(NodeStoppedError("the node process is gone"))

    def _answer(self, frame: Sequence[Any]) -> None:
        try:
            kind, request_id, applied, payload = frame
        except (TypeError, ValueError):
            raise protocol.ProtocolError(f"not an answer: {frame!r}") from None
        if isinstance(applied, int) and applied > self.applied_index:
            self.applied_index = applied
        future = self._pending.get(request_id)
        if future is not None and not future.done():
            future.set_result((kind, applied, payload))


def _hand_back() -> NoReturn:
    raise protocol.HandBack()


class RemoteNode(NodePort[Result]):
    """The node, seen from a front: proposals go over the socket; anything else is only
    needed by routes a front relays, and hands the request back if it is ever asked."""

    def __init__(self, node_id: str, channel: NodeChannel) -> None:
        self._node_id = node_id
        self._channel = channel

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def applied_index(self) -> int:
        """The newest applied index the node has told this front (with each answer)."""
        return self._channel.applied_index

    async def propose(self, command: bytes, timeout: float) -> Result:
        kind, _applied, payload = await self._channel.call(protocol.PROPOSE, command, timeout)
        if kind == protocol.RESULT:
            return protocol.decode_result(payload)
        if kind == protocol.ERROR:
            raise protocol.decode_error(payload)
        raise protocol.ProtocolError(f"unexpected answer kind {kind!r}")

    @property
    def suffrage(self) -> str:
        # Checked by the node for each proposal: a removed node hands the write back, and its
        # own app then answers ``node_removed``.
        return "voter"

    @property
    def restoring(self) -> bool:
        _hand_back()  # asked by reads and /readyz only, which are relayed

    @property
    def halted_reason(self) -> str | None:
        return None  # a halted node answers proposals with ``node_stopped``

    async def read_barrier(self, timeout: float) -> None:
        _hand_back()

    def status(self) -> NodeStatus:
        _hand_back()

    def membership(self) -> Membership:
        _hand_back()

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        _hand_back()

    def events(self, after: int, limit: int) -> EventPageView[Result]:
        _hand_back()

    def snapshots(self) -> Sequence[SnapshotFileInfo]:
        _hand_back()

    def latest_snapshot(self) -> SnapshotView | None:
        _hand_back()

    async def take_snapshot(self) -> int:
        _hand_back()

    async def add_member(
        self,
        node_id: str,
        raft_addr: str,
        http_addr: str,
        *,
        promote: bool = True,
        timeout: float | None = None,
    ) -> Membership:
        _hand_back()

    async def promote_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        _hand_back()

    async def remove_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        _hand_back()

    async def transfer_leadership(
        self, target: str | None = None, *, timeout: float | None = None
    ) -> str:
        _hand_back()
