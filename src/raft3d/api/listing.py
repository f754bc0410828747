"""List responses: pagination (``?limit=N&after=ID``) and JSON arrays encoded in time slices.

A list of a big farm is the biggest thing a node renders, and it renders on the event loop
that also runs Raft. So a list is never encoded in one go: items are encoded in small batches,
and once ``SLICE_S`` has passed the bytes so far are written and the loop gets to run other
work (heartbeats, other requests) before the next slice. The objects are immutable and the
list of them is taken at once, with the applied index, so every slice reads the same state.

Pagination follows creation order: ``after`` is the id of the last item of the previous page
(it need not match the filters any more), ``limit`` the page size (1..``MAX_LIMIT``). When more
items follow, the response carries ``Link: <same query, after=last id>; rel="next"``. Without
``limit`` the whole array is returned, as before.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiohttp import hdrs, web

from raft3d.api import headers
from raft3d.api.errors import BadRequest
from raft3d.api.inputs import int_param

LIMIT_PARAM = "limit"
AFTER_PARAM = "after"
PAGE_PARAMS = (LIMIT_PARAM, AFTER_PARAM)
MAX_LIMIT = 10_000
# The longest the loop is held between two yields while a list is encoded or scanned.
SLICE_S = 0.004
BATCH = 128  # items between two looks at the clock
WRITE_BYTES = 256 * 1024  # also write out when this much is waiting


class Listable(Protocol):
    @property
    def id(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=Listable)


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int | None
    after: str | None


def page_request(params: Mapping[str, str]) -> PageRequest:
    """``limit`` and ``after`` from checked query parameters (see ``query_params``)."""
    limit = None
    if LIMIT_PARAM in params:
        limit = int_param(params, LIMIT_PARAM, default=0, minimum=1, maximum=MAX_LIMIT)
    after = params.get(AFTER_PARAM)
    if after == "":
        raise BadRequest(
            "invalid_query", "the query string is not valid", {AFTER_PARAM: ["Must not be empty."]}
        )
    return PageRequest(limit, after)


class _Slices:
    """Tells when the current slice of loop time is used up, and yields the loop."""

    def __init__(self) -> None:
        self.yields = 0
        self._started = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self._started >= SLICE_S

    async def pause(self) -> None:
        await asyncio.sleep(0)
        self.yields += 1
        self._started = time.perf_counter()


async def send_list(
    request: web.Request,
    items: Sequence[T],
    page: PageRequest,
    *,
    applied_index: int,
    keep: Callable[[T], bool] | None = None,
) -> web.StreamResponse:
    """Answer with ``items`` (creation order) that ``keep`` accepts, paginated by ``page``."""
    slices = _Slices()
    start = 0 if page.after is None else await _index_after(items, page.after, slices)
    response = web.StreamResponse(headers={headers.APPLIED_INDEX: str(applied_index)})
    response.content_type = "application/json"
    response.charset = "utf-8"
    if page.limit is not None:
        chosen = await _collect(items, start, keep, page.limit + 1, slices)
        if len(chosen) > page.limit:
            chosen = chosen[: page.limit]
            following = request.rel_url.update_query(
                {AFTER_PARAM: chosen[-1].id, LIMIT_PARAM: str(page.limit)}
            )
            response.headers[hdrs.LINK] = f'<{following}>; rel="next"'
        items, start, keep = chosen, 0, None
    if request.method == hdrs.METH_HEAD:
        response.content_length = 0  # the headers a GET would carry, without its body
        await response.prepare(request)
        return response
    await response.prepare(request)
    await _write_array(response, items, start, keep, slices)
    return response


async def _index_after(items: Sequence[T], after: str, slices: _Slices) -> int:
    """The position just past the item with id ``after``; 400 when no item has it."""
    for base in range(0, len(items), BATCH * 8):
        ids = [item.id for item in items[base : base + BATCH * 8]]
        if after in ids:
            return base + ids.index(after) + 1
        if slices.due():
            await slices.pause()
    raise BadRequest(
        "invalid_query",
        "the query string is not valid",
        {AFTER_PARAM: [f"No item has id {after!r}."]},
    )


async def _collect(
    items: Sequence[T], start: int, keep: Callable[[T], bool] | None, count: int, slices: _Slices
) -> list[T]:
    chosen: list[T] = []
    for base in range(start, len(items), BATCH * 8):
        batch = items[base : base + BATCH * 8]
        chosen.extend(batch if keep is None else [item for item in batch if keep(item)])
        if len(chosen) >= count:
            return chosen[:count]
        if slices.due():
            await slices.pause()
    return chosen


async def _write_array(
    response: web.StreamResponse,
    items: Sequence[T],
    start: int,
    keep: Callable[[T], bool] | None,
    slices: _Slices,
) -> None:
    dumps = json.dumps
    pending: list[bytes] = [b"["]
    size = 0
    first = True
    for base in range(start, len(items), BATCH):
        for item in items[base : base + BATCH]:
            if keep is not None and not keep(item):
                continue
            encoded = dumps(item.to_dict()).encode()
            pending.append(encoded if first else b"," + encoded)
            size += len(encoded) + 1
            first = False
        if size >= WRITE_BYTES or slices.due():
            await response.write(b"".join(pending))
            pending, size = [], 0
            if slices.due():
                await slices.pause()
    pending.append(b"]")
    await response.write(b"".join(pending))
    await response.write_eof()


async def write_in_slices(
    response: web.StreamResponse, pieces: Sequence[bytes | memoryview]
) -> None:
    """Write already-encoded ``pieces`` (then end the body), yielding the loop between slices."""
    slices = _Slices()
    pending: list[bytes | memoryview] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= WRITE_BYTES or slices.due():
            await response.write(b"".join(pending))
            pending, size = [], 0
            if slices.due():
                await slices.pause()
    await response.write(b"".join(pending))
    await response.write_eof()
