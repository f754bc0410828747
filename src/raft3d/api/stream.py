"""``GET /api/v1/events/stream``: committed commands pushed as Server-Sent Events.

Each applied log entry is one event::

    id: <log index>
    event: <type>            create_printer, update_job_status, ... or noop
    data: <JSON>             exactly an item of GET /api/v1/events (raft3d.api.events)

Where a stream starts: after the ``Last-Event-ID`` header (sent by a reconnecting
``EventSource``), else after ``?after=N``, else at this node's applied index (only what is
applied from then on). Older events are replayed from the log first, then live ones follow
with no gap and no repeat. A start below the retained log is refused before the stream opens:
410 ``compacted`` with ``first_index`` and ``snapshot_index``, as ``GET /api/v1/events``.
A ``: heartbeat`` comment every ``[http] sse_heartbeat_s`` keeps idle streams (and proxies)
alive and notices readers that went away.

Back-pressure: the apply path hands each entry to every stream's buffer and never waits; no
rendering happens there. A stream whose buffer holds ``[http] sse_buffer_events`` events it
could not write yet (its reader is slower than the cluster's write rate) is cut off at once:
the node is never slowed by a reader, and the reader reconnects with its Last-Event-ID.

The stream shows what this node has applied: a follower may trail the leader slightly, never
out of order or with gaps. A node that halts or shuts down ends its streams.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Mapping

from aiohttp import web

from raft3d.api import headers
from raft3d.api.cluster import check_not_halted
from raft3d.api.errors import BadRequest
from raft3d.api.events import AFTER_PARAM, check_retained, event_json
from raft3d.api.inputs import MAX_QUERY_INT, int_param, query_params
from raft3d.api.ports import CommittedEntry, NodePort
from raft3d.api.typedefs import NODE_KEY, OPTIONS_KEY
from raft3d.domain.results import Result

LAST_EVENT_ID = "Last-Event-ID"
CATCH_UP_PAGE = 500
HEARTBEAT = b": heartbeat\n\n"
_DECIMAL = re.compile(r"[0-9]{1,19}")


class _Feed:
    """One stream's buffer of applied entries, filled by the apply path."""

    __slots__ = ("__weakref__", "capacity", "entries", "overflowed", "transport", "wakeup")

    def __init__(self, capacity: int, transport: asyncio.BaseTransport | None) -> None:
        self.capacity = capacity
        self.entries: deque[CommittedEntry[Result]] = deque()
        self.overflowed = False
        self.transport = transport
        self.wakeup = asyncio.Event()

    def offer(self, entry: CommittedEntry[Result]) -> None:
        """Called on the apply path: O(1), never blocks, never raises."""
        if self.overflowed:
            return
        if len(self.entries) >= self.capacity:
            self.cut_off()
            return
        self.entries.append(entry)
        self.wakeup.set()

    def cut_off(self) -> None:
        """Drop the buffer and the connection (a write stuck on a full socket fails too)."""
        self.overflowed = True
        self.entries.clear()
        self.wakeup.set()
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.abort()


class _OpenStreams:
    def __init__(self) -> None:
        self.feeds: set[_Feed] = set()


_STREAMS = web.AppKey("event_streams", _OpenStreams)


def setup_event_streams(app: web.Application) -> None:
    """Track the app's open streams so that shutting down ends them at once."""
    app[_STREAMS] = _OpenStreams()

    async def end_streams(_app: web.Application) -> None:
        for feed in list(app[_STREAMS].feeds):
            feed.cut_off()

    app.on_shutdown.append(end_streams)


def frame(entry: CommittedEntry[Result]) -> bytes:
    item = event_json(entry)
    data = json.dumps(item, separators=(",", ":"), ensure_ascii=False)  # one line: \n escaped
    return f"id: {entry.index}\nevent: {item['type']}\ndata: {data}\n\n".encode()


def _start_after(request: web.Request, params: Mapping[str, str], node: NodePort[Result]) -> int:
    resume = request.headers.get(LAST_EVENT_ID)
    if resume is not None:
        text = resume.strip()
        if not _DECIMAL.fullmatch(text) or int(text) > MAX_QUERY_INT:
            raise BadRequest(
                "invalid_header",
                f"{LAST_EVENT_ID} must be a log index (a non-negative integer)",
                {LAST_EVENT_ID: resume[:64]},
            )
        return int(text)
    if AFTER_PARAM in params:
        return int_param(params, AFTER_PARAM, default=0, minimum=0, maximum=MAX_QUERY_INT)
    return node.applied_index


async def stream_events(request: web.Request) -> web.StreamResponse:
    params = query_params(request, (AFTER_PARAM,))
    check_not_halted(request)
    node = request.app[NODE_KEY]
    options = request.app[OPTIONS_KEY]
    last = _start_after(request, params, node)
    page = node.events(last, CATCH_UP_PAGE)
    check_retained(last, page)
    # Subscribed in the same step as the page was read: nothing applied in between is missed.
    feed = _Feed(options.sse_buffer_events, request.transport)
    unsubscribe = node.subscribe(feed.offer)
    request.app[_STREAMS].feeds.add(feed)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # proxies: pass events through at once
            headers.APPLIED_INDEX: str(page.last_index),
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")
        live_from = page.last_index
        while True:  # catch up from the log
            if page.events:
                await response.write(b"".join(frame(entry) for entry in page.events))
                last = page.events[-1].index
            if last >= live_from or len(page.events) < CATCH_UP_PAGE or feed.overflowed:
                break
            page = node.events(last, CATCH_UP_PAGE)
            if last < page.first_index - 1:
                return response  # compacted meanwhile: the reader reconnects and gets 410
        await _follow(node, feed, response, last, options.sse_heartbeat_s)
        return response
    except ConnectionError:  # the reader went away, or was cut off for being too slow
        return response
    finally:
        unsubscribe()
        request.app[_STREAMS].feeds.discard(feed)


async def _follow(
    node: NodePort[Result], feed: _Feed, response: web.StreamResponse, last: int, heartbeat_s: float
) -> None:
    entries = feed.entries
    while not feed.overflowed and node.halted_reason is None:
        if not entries:
            feed.wakeup.clear()
            try:
                await asyncio.wait_for(feed.wakeup.wait(), heartbeat_s)
            except TimeoutError:
                await response.write(HEARTBEAT)
            continue
        batch = []
        while entries:
            entry = entries.popleft()
            if entry.index > last:
                batch.append(frame(entry))
                last = entry.index
        if batch:
            await response.write(b"".join(batch))
