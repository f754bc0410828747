"""Authenticating the node-to-node hop of a forwarded write.

A follower that forwards a client's write to the leader tells it who the client is (after
authenticating the client itself), how long the leader may take, and that the request comes
from a peer. Those claims are worth something only if a client cannot make them, so the
forwarder signs them with a key derived from the cluster secret, over everything the leader
acts on: method, path and query, the claims, the idempotency key, content type and a hash of
the body. A signature is valid for ``MAX_SKEW_S`` either side of the leader's clock, and each node
accepts a given signature once (``ReplayGuard``), so a captured request cannot be replayed
(over TLS nothing can be captured in the first place).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SKEW_S = 60.0
_CONTEXT = b"raft3d forwarded request v1"


@dataclass(frozen=True, slots=True)
class ForwardClaims:
    forwarded_by: str
    budget_ms: int
    caller: str
    role: str
    timestamp_ms: int


def forwarding_key(secret: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT, hashlib.sha256).digest()


def sign(
    key: bytes,
    method: str,
    path_qs: str,
    claims: ForwardClaims,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    return hmac.new(key, _canonical(method, path_qs, claims, headers, body), "sha256").hexdigest()


def verify(
    key: bytes,
    method: str,
    path_qs: str,
    claims: ForwardClaims,
    headers: Mapping[str, str],
    body: bytes,
    mac: str,
    now_ms: int,
) -> str | None:
    """None if ``mac`` is right and fresh; otherwise why not."""
    expected = sign(key, method, path_qs, claims, headers, body)
    if not hmac.compare_digest(expected, mac.lower()):
        return "the forwarding signature does not verify (is the cluster secret the same?)"
    if abs(now_ms - claims.timestamp_ms) > MAX_SKEW_S * 1000:
        return f"the forwarding signature is older than {MAX_SKEW_S:g} s (are the clocks set?)"
    return None


def _canonical(
    method: str,
    path_qs: str,
    claims: ForwardClaims,
    headers: Mapping[str, str],
    body: bytes,
) -> bytes:
    parts = (
        method.upper(),
        path_qs,
        claims.forwarded_by,
        str(claims.budget_ms),
        claims.caller,
        claims.role,
        str(claims.timestamp_ms),
        headers.get("Idempotency-Key", ""),
        headers.get("Content-Type", ""),
        hashlib.sha256(body).hexdigest(),
    )
    # Lengths first, so no two different requests share a canonical form.
    return b"".join(f"{len(p.encode())}:".encode() + p.encode() for p in parts)


class ReplayGuard:
    """Remembers the signatures accepted while they are fresh; a second use is refused.

    A forwarder never re-sends a signature (a retry is signed anew, with a new timestamp), so
    only a replay repeats one. At most ``capacity`` are kept: past that, the oldest are
    forgotten early (a very busy node narrows its window rather than grow without bound).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, int] = OrderedDict()  # mac -> when it stops being fresh

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, mac: str, timestamp_ms: int, now_ms: int) -> bool:
        seen = self._seen
        while seen and (next(iter(seen.values())) < now_ms or len(seen) >= self._capacity):
            seen.popitem(last=False)
        key = mac.lower()
        if key in seen:
            return False
        seen[key] = max(timestamp_ms, now_ms) + int(MAX_SKEW_S * 1000)
        return True
