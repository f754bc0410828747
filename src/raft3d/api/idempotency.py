"""Idempotency tags: the client's key plus a fingerprint of what the request asked for.

The state machine remembers the result of each key. A retry with the same key and the same
fingerprint gets the original result back; the same key with a different request is refused.
The fingerprint covers the validated, normalised request as the client sent it, never values
the server generated (such as an id chosen for an omitted one): those differ between retries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import Enum

from aiohttp import web

from raft3d.api.inputs import idempotency_key
from raft3d.domain.commands import IdempotencyTag


def _jsonable(value: object) -> object:
    return value.value if isinstance(value, Enum) else str(value)


def fingerprint(method: str, route: str, request_fields: Mapping[str, object]) -> str:
    canonical = json.dumps(
        request_fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_jsonable,
    )
    # PUT is an alias of POST on the status route: the same change, whichever verb carries it.
    verb = "POST" if method.upper() == "PUT" else method.upper()
    digest = hashlib.sha256()
    for part in (verb, route, canonical):
        digest.update(part.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def tag_for(request: web.Request, request_fields: Mapping[str, object]) -> IdempotencyTag | None:
    """The request's idempotency tag, or None without an ``Idempotency-Key`` header."""
    key = idempotency_key(request)
    if key is None:
        return None
    route = request.match_info.route.resource
    template = route.canonical if route is not None else request.path
    return IdempotencyTag(key, fingerprint(request.method, template, request_fields))
