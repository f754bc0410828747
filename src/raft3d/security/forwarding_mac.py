"""Authenticating the node-to-node hop of a forwarded write.

A follower that forwards a client's write to the leader tells it who the client is (after
authenticating the client itself), how long the leader may take, and that the request comes
from a peer. Those claims are worth something only if a client cannot make them, so the
forwarder signs them with a key derived from the cluster secret, over everything the leader
acts on: method, path and query, the claims, the idempotency key, content type and a hash of
the body. A signature is valid for ``MAX_SKEW_S`` either side of the leader's clock, which
bounds how long a captured request could be replayed (over TLS nothing can be captured).
"""

from __future__ import annotations

import hashlib
import hmac
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
