"""The front ↔ node socket protocol: msgpack frames, each a list ``[kind, request id, ...]``.

msgpack values delimit themselves, so frames go back to back on a stream socket with no length
prefix. Requests carry an id the answer repeats: many requests are in flight on one connection
at once and answers come in any order.

Front to node:
  ``[PROPOSE, id, command bytes, timeout_s]``   answered by ``RESULT`` or ``ERROR``
  ``[OBSERVED, front, [[route, method, status, seconds, relayed], ...]]``   requests a front
  answered (or relayed to the node's app)
Node to front:
  ``[RESULT, id, applied_index, result]``  ``result`` is ``encode_result``'s
  ``[ERROR, id, applied_index, error]``    ``error`` is ``encode_error``'s
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from raft3d.api.errors import ApiError
from raft3d.domain.results import Accepted, Rejected, Result
from raft3d.node.errors import (
    EntryTooLargeError,
    LeadershipTransferError,
    NodeStoppedError,
    NoLeaderError,
    NotLeaderError,
    OutcomeUnknownError,
)

PROPOSE = 1
OBSERVED = 2
RESULT = 3
ERROR = 4

# Frames bigger than this are refused (a command is at most an entry: far below).
MAX_FRAME_BYTES = 64 * 1024 * 1024


class ProtocolError(Exception):
    """A frame that is not one of the protocol's."""


class HandBack(Exception):
    """The node cannot answer this request through the socket (it is not the leader, it is
    handing leadership over, it was removed): the front relays the whole request to the
    node's own HTTP app, which forwards it to the leader as it would have in-process."""


class RemoteApiError(ApiError):
    """An ``ApiError`` the node raised (e.g. ``quota_exceeded``), rendered by the front."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, object],
        extra_headers: Mapping[str, str],
    ) -> None:
        super().__init__(code, message, details, extra_headers=extra_headers)
        self.status = status


class RemoteInternalError(Exception):
    """The node failed in a way it has no mapping for (a bug): the front answers 500."""


def packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True)


def unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=False, use_list=True, strict_map_key=True, max_buffer_size=MAX_FRAME_BYTES
    )


def encode_result(result: Result) -> list[Any]:
    if isinstance(result, Accepted):
        return ["a", result.value, result.replayed]
    return ["r", result.code, result.message, result.details, result.replayed]


def decode_result(data: Any) -> Result:
    try:
        if data[0] == "a":
            value, replayed = data[1:]
            return Accepted(value=dict(value), replayed=bool(replayed))
        if data[0] == "r":
            code, message, details, replayed = data[1:]
            return Rejected(
                code=str(code), message=str(message), details=dict(details), replayed=replayed
            )
    except (TypeError, ValueError, IndexError) as exc:
        raise ProtocolError(f"not a result: {data!r}") from exc
    raise ProtocolError(f"not a result: {data!r}")


def encode_error(exc: BaseException) -> list[Any]:
    """What the front must raise in place of ``exc``; anything unknown becomes ``internal``."""
    if isinstance(exc, (NotLeaderError, LeadershipTransferError, HandBack)):
        return ["handback"]
    if isinstance(exc, OutcomeUnknownError):
        return ["outcome_unknown", exc.index, exc.term]
    if isinstance(exc, EntryTooLargeError):
        return ["too_large", exc.size, exc.limit]
    if isinstance(exc, NoLeaderError):
        return ["no_leader", str(exc)]
    if isinstance(exc, NodeStoppedError):
        return ["stopped", str(exc)]
    if isinstance(exc, TimeoutError):
        return ["timeout", str(exc)]
    if isinstance(exc, ApiError):
        return ["api", exc.status, exc.code, exc.message, exc.details, exc.extra_headers]
    return ["internal", f"{type(exc).__name__}: {exc}"]


def decode_error(data: Any) -> Exception:
    """The exception the node's error stands for, to raise in the front."""
    try:
        kind, args = data[0], data[1:]
        if kind == "handback":
            return HandBack()
        if kind == "outcome_unknown":
            return OutcomeUnknownError(int(args[0]), int(args[1]))
        if kind == "too_large":
            return EntryTooLargeError(int(args[0]), int(args[1]))
        if kind == "no_leader":
            return NoLeaderError(str(args[0]))
        if kind == "stopped":
            return NodeStoppedError(str(args[0]))
        if kind == "timeout":
            return TimeoutError(str(args[0]))
        if kind == "api":
            status, code, message, details, extra = args
            return RemoteApiError(int(status), code, message, dict(details), dict(extra))
        if kind == "internal":
            return RemoteInternalError(str(args[0]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ProtocolError(f"not an error: {data!r}") from exc
    raise ProtocolError(f"not an error: {data!r}")
