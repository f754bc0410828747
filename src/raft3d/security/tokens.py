"""Client bearer tokens: roles, and tokens kept only as hashes.

Tokens are 256 random bits, so a plain SHA-256 is enough to make a stolen config useless for
calling the API (there is nothing to brute-force); a slow password hash would add nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)  # each role may do everything the ones before it may
_RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX = "r3d_"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_token_hash(text: str) -> bool:
    return _HEX64.fullmatch(text) is not None


def allows(role: str, needed: str) -> bool:
    """True when ``role`` may do what ``needed`` may."""
    return role in _RANK and _RANK[role] >= _RANK[needed]


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: str


ANONYMOUS_ADMIN = Identity("anonymous", ADMIN)  # who everyone is while auth is off


class TokenTable:
    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """``entries``: (name, role, sha256 hex) for each accepted token."""
        self._by_hash = {digest.lower(): Identity(name, role) for name, role, digest in entries}

    def identify(self, token: str) -> Identity | None:
        digest = hash_token(token)
        found = None
        for known, identity in self._by_hash.items():  # no early exit: constant time per entry
            if hmac.compare_digest(known, digest):
                found = identity
        return found
