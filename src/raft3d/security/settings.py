"""The ``[tls]`` and ``[auth]`` sections of a node's TOML file.

Kept apart from ``raft3d.config`` so that file stays about the cluster itself::

    [tls]                               # absent: plain TCP and HTTP (the local demo)
    ca = "certs/ca.pem"                 # the cluster CA: peers must present a cert it signed
    cert = "certs/node1.pem"            # this node's certificate (CN = node id)
    key = "certs/node1-key.pem"
    peers = true                        # mutual TLS on the Raft port
    http = true                         # HTTPS for clients (and for forwarding between nodes)

    [auth]                              # absent or enabled = false: no client tokens
    enabled = true
    open = ["/healthz", "/readyz"]      # served without a token (may add "/metrics")

    [[auth.tokens]]                     # `raft3d token --name NAME --role ROLE` prints one
    name = "alice"
    role = "operator"                   # viewer | operator | admin
    sha256 = "…"                        # the token's hash; the token itself is not stored

Relative file paths are relative to the current directory, like ``node.data_dir``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raft3d.security.tokens import ROLES, is_token_hash

DEFAULT_OPEN_PATHS = ("/healthz", "/readyz")
# Only the operational endpoints may be opened: an open path skips the role check entirely.
OPENABLE_PATHS = ("/healthz", "/readyz", "/metrics")


class SecurityConfigError(Exception):
    """A ``[tls]`` or ``[auth]`` setting is missing, malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca: Path
    cert: Path
    key: Path
    peers: bool = True
    http: bool = True


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    role: str
    sha256: str  # hex digest of the token


@dataclass(frozen=True, slots=True)
class AuthSettings:
    enabled: bool = False
    open_paths: tuple[str, ...] = DEFAULT_OPEN_PATHS
    tokens: tuple[TokenEntry, ...] = field(default_factory=tuple)


def tls_from_mapping(raw: object) -> TlsSettings | None:
    if raw is None:
        return None
    table = _as_table(raw, "[tls]")
    _only(table, {"ca", "cert", "key", "peers", "http"}, "tls")
    tls = TlsSettings(
        ca=Path(_path(table, "ca")),
        cert=Path(_path(table, "cert")),
        key=Path(_path(table, "key")),
        peers=_bool(table, "peers", True, "tls"),
        http=_bool(table, "http", True, "tls"),
    )
    return tls if tls.peers or tls.http else None


def auth_from_mapping(raw: object) -> AuthSettings:
    if raw is None:
        return AuthSettings()
    table = _as_table(raw, "[auth]")
    _only(table, {"enabled", "open", "tokens"}, "auth")
    open_raw = table.get("open", list(DEFAULT_OPEN_PATHS))
    if not isinstance(open_raw, list) or not all(p in OPENABLE_PATHS for p in open_raw):
        raise SecurityConfigError(
            f"auth.open must be an array of some of {', '.join(map(repr, OPENABLE_PATHS))}"
        )
    tokens_raw = table.get("tokens", [])
    if not isinstance(tokens_raw, list):
        raise SecurityConfigError("auth.tokens must be an array of tables")
    tokens = tuple(_token(t, i) for i, t in enumerate(tokens_raw))
    hashes = [t.sha256 for t in tokens]
    if len(set(hashes)) != len(hashes):
        raise SecurityConfigError("auth.tokens has the same token hash twice")
    enabled = _bool(table, "enabled", False, "auth")
    if enabled and not tokens:
        raise SecurityConfigError("auth.enabled is true but auth.tokens is empty")
    return AuthSettings(enabled=enabled, open_paths=tuple(open_raw), tokens=tokens)


def _token(raw: object, i: int) -> TokenEntry:
    where = f"auth.tokens[{i}]"
    table = _as_table(raw, where)
    _only(table, {"name", "role", "sha256"}, where)
    name = table.get("name")
    role = table.get("role")
    digest = table.get("sha256")
    if not isinstance(name, str) or not name:
        raise SecurityConfigError(f"{where}.name must be a non-empty string")
    if role not in ROLES:
        raise SecurityConfigError(f"{where}.role must be one of {', '.join(ROLES)}")
    if not isinstance(digest, str) or not is_token_hash(digest):
        raise SecurityConfigError(
            f"{where}.sha256 must be 64 hex digits (the hash `raft3d token` prints)"
        )
    return TokenEntry(name=name, role=str(role), sha256=digest.lower())


def _as_table(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise SecurityConfigError(f"{what} must be a table")
    return raw


def _only(table: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in table:
        if key not in known:
            raise SecurityConfigError(f"unknown setting {where}.{key}")


def _path(table: Mapping[str, Any], key: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise SecurityConfigError(f"tls.{key} must be a file path")
    return value


def _bool(table: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise SecurityConfigError(f"{where}.{key} must be true or false")
    return value
