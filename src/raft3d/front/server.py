"""The node's end of the front socket: proposals from fronts, and the requests they served.

Runs on the node's event loop. Each proposal is its own task, so one connection carries many
at once; the answer names the request's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import msgpack
from prometheus_client import Counter

from raft3d.api.metrics import ApiMetrics
from raft3d.api.options import ApiOptions
from raft3d.api.ports import NodePort
from raft3d.api.quotas import check_count
from raft3d.domain.results import Result
from raft3d.domain.state import FarmStateMachine
from raft3d.front import protocol

log = logging.getLogger("raft3d.front")

# The quota each creating command counts against (SPEC limits); status changes have none.
QUOTA_KINDS = {
    "create_printer": "printers",
    "create_filament": "filaments",
    "create_print_job": "print_jobs",
}
READ_CHUNK = 256 * 1024


class FrontServer:
    def __init__(
        self,
        node: NodePort[Result],
        state: FarmStateMachine,
        options: ApiOptions,
        metrics: ApiMetrics,
    ) -> None:
        self._node = node
        self._state = state
        self._options = options
        self._metrics = metrics
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # proposals in flight
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.front_requests = Counter(
            "raft3d_front_requests",
            "HTTP requests that came in through this node's front processes: answered there "
            "(served, also counted in raft3d_requests) or relayed to this process (relayed)",
            ["front", "how"],
            registry=metrics.registry,
        )

    async def start(self, path: Path) -> None:
        """Listen on ``path`` (a unix socket only this user may open)."""
        remove_stale(path)
        self._server = await asyncio.start_unix_server(self._serve, str(path))
        os.chmod(path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in self._connections.values():
            writer.close()  # its reader sees the end and returns
        waiting = [*self._tasks, *self._connections]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        unpacker = protocol.unpacker()
        packer = protocol.packer()
        try:
            while chunk := await reader.read(READ_CHUNK):
                unpacker.feed(chunk)
                for frame in unpacker:
                    self._dispatch(frame, writer, packer)
        except (OSError, ValueError, protocol.ProtocolError) as exc:
            log.error("front connection failed: %s", exc)
        finally:
            self._connections.pop(task, None)
            writer.close()

    def _dispatch(self, frame: Any, writer: asyncio.StreamWriter, packer: msgpack.Packer) -> None:
        if not isinstance(frame, list) or len(frame) < 2:
            raise protocol.ProtocolError(f"not a request: {frame!r}")
        kind = frame[0]
        if kind == protocol.PROPOSE and len(frame) == 4:
            _kind, request_id, command, timeout = frame
            proposal = asyncio.ensure_future(
                self._propose(request_id, command, float(timeout), writer, packer)
            )
            self._tasks.add(proposal)
            proposal.add_done_callback(self._tasks.discard)
        elif kind == protocol.OBSERVED and len(frame) == 3:
            self._observed(frame[1], frame[2])
        else:
            raise protocol.ProtocolError(f"unknown request {kind!r}")

    async def _propose(
        self,
        request_id: int,
        command: bytes,
        timeout: float,
        writer: asyncio.StreamWriter,
        packer: msgpack.Packer,
    ) -> None:
        try:
            result = await self._checked_propose(command, timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every error is the front's to render
            error = protocol.encode_error(exc)
            if error[0] == "internal":
                log.exception("a proposal from a front failed")
            answer = [protocol.ERROR, request_id, self._node.applied_index, error]
        else:
            answer = [
                protocol.RESULT,
                request_id,
                self._node.applied_index,
                protocol.encode_result(result),
            ]
        if not writer.is_closing():
            writer.write(packer.pack(answer))

    async def _checked_propose(self, command: bytes, timeout: float) -> Result:
        if self._node.suffrage == "removed":
            raise protocol.HandBack()  # the node's own app answers node_removed
        kind = QUOTA_KINDS.get(_command_type(command))
        if kind is not None:
            check_count(self._options, self._state, kind)
        return await self._node.propose(command, timeout)

    def _observed(self, front: object, observations: object) -> None:
        if not isinstance(observations, list):
            raise protocol.ProtocolError("observations are not a list")
        served = 0
        for route, method, status, seconds, relayed in observations:
            if not relayed:  # a relayed request was counted when this process answered it
                self._metrics.observe(str(route), str(method), int(status), float(seconds))
                served += 1
        if served:
            self.front_requests.labels(front=str(front), how="served").inc(served)
        if served < len(observations):
            relayed_count = len(observations) - served
            self.front_requests.labels(front=str(front), how="relayed").inc(relayed_count)


def remove_stale(path: Path) -> None:
    """Remove a socket file left by a node that was killed."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _command_type(command: bytes) -> str:
    try:
        envelope = msgpack.unpackb(command, raw=False)
        return str(envelope["type"])
    except (ValueError, TypeError, KeyError, msgpack.UnpackException):
        return ""  # the node refuses it when proposing
