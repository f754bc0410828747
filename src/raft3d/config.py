"""Node settings: one TOML file per node (see ``conf/``), with environment overrides.

File layout::

    [node]
    id = "node1"
    http = "127.0.0.1:8080"
    raft = "127.0.0.1:9080"
    data_dir = "data/node1"          # relative paths are relative to the current directory
    advertise_http = "node1:8080"    # optional: where others reach this node, when that is
    advertise_raft = "node1:9080"    # not the bind address (default: http / raft above)

    [cluster]
    secret = "..."                    # shared by all members; authenticates peer traffic

    [[cluster.members]]               # every voter, this node included
    id = "node1"
    http = "127.0.0.1:8080"
    raft = "127.0.0.1:9080"

    [raft]                            # optional; defaults shown in RaftSettings
    heartbeat_ms = 50

    [http]                            # optional
    request_timeout_s = 5.0

``[tls]`` and ``[auth]`` are described in ``raft3d.security.settings``.

Environment overrides: ``RAFT3D_DATA_DIR``, ``RAFT3D_CLUSTER_SECRET``, ``RAFT3D_HTTP``,
``RAFT3D_LOG_LEVEL``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from raft3d.security.settings import (
    AuthSettings,
    SecurityConfigError,
    TlsSettings,
    auth_from_mapping,
    tls_from_mapping,
)

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration is missing, malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str) -> Address:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{what}: expected 'host:port', got {text!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Member:
    node_id: str
    http: Address
    raft: Address
    scheme: str = "http"  # "https" when the cluster serves clients over TLS

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{self.http}"


@dataclass(frozen=True, slots=True)
class RaftSettings:
    tick_ms: int = 10
    heartbeat_ms: int = 50
    election_timeout_ms: int = 300  # randomized per election in [this, 2 * this)
    pre_vote: bool = True
    check_quorum: bool = True
    max_entry_bytes: int = 64 * 1024
    max_msg_bytes: int = 1024 * 1024
    max_inflight_msgs: int = 256
    snapshot_threshold: int = 10_000  # applied entries between snapshots
    # ...and only once those entries' bytes reach this fraction of the last snapshot's size:
    # writing a big state again costs more than replaying a small log.
    snapshot_log_ratio: float = 0.1
    snapshot_trailing_entries: int = 5_000  # log entries kept after a snapshot, for readers
    snapshots_keep: int = 2
    snapshot_chunk_bytes: int = 256 * 1024

    @property
    def heartbeat_ticks(self) -> int:
        return max(1, self.heartbeat_ms // self.tick_ms)

    @property
    def election_ticks(self) -> int:
        return max(2, self.election_timeout_ms // self.tick_ms)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    request_timeout_s: float = 5.0
    max_body_bytes: int = 1024 * 1024
    sse_heartbeat_s: float = 15.0  # comment lines on idle /api/v1/events/stream connections
    sse_buffer_events: int = 4096  # events a stream may lag behind before it is cut off


@dataclass(frozen=True, slots=True)
class Settings:
    node_id: str
    http: Address
    raft: Address
    data_dir: Path
    cluster_secret: bytes
    members: tuple[Member, ...]
    raft_settings: RaftSettings = field(default_factory=RaftSettings)
    http_settings: HttpSettings = field(default_factory=HttpSettings)
    log_level: str = "INFO"
    # Deployment across hosts (SPEC §9); the defaults are the local demo's.
    advertise_http: Address | None = None  # None: the bind address, node.http
    advertise_raft: Address | None = None  # None: the bind address, node.raft
    tls: TlsSettings | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)

    @property
    def public_http(self) -> Address:
        """Where clients and other nodes reach this node's HTTP API."""
        return self.advertise_http or self.http

    @property
    def public_raft(self) -> Address:
        return self.advertise_raft or self.raft

    @property
    def http_scheme(self) -> str:
        return "https" if self.tls is not None and self.tls.http else "http"

    @property
    def peers(self) -> tuple[Member, ...]:
        """Every member but this node."""
        return tuple(m for m in self.members if m.node_id != self.node_id)

    def member(self, node_id: str) -> Member | None:
        return next((m for m in self.members if m.node_id == node_id), None)


def load_settings(
    path: str | Path,
    *,
    data_dir: str | Path | None = None,
    log_level: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read a node's TOML file; command-line values win over the environment, which wins over
    the file."""
    env = os.environ if env is None else env
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from exc
    return settings_from_mapping(raw, data_dir=data_dir, log_level=log_level, env=env)


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    data_dir: str | Path | None = None,
    log_level: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    env = {} if env is None else env
    node = _table(raw, "node")
    cluster = _table(raw, "cluster")
    node_id = _string(node, "id", "node")
    http = Address.parse(env.get("RAFT3D_HTTP") or _string(node, "http", "node"), "node.http")
    raft = Address.parse(_string(node, "raft", "node"), "node.raft")
    chosen_dir = data_dir or env.get("RAFT3D_DATA_DIR") or _string(node, "data_dir", "node")
    secret = env.get("RAFT3D_CLUSTER_SECRET") or _string(cluster, "secret", "cluster")
    if len(secret) < 16:
        raise ConfigError("cluster.secret must be at least 16 characters")

    members_raw = cluster.get("members")
    if not isinstance(members_raw, list) or not members_raw:
        raise ConfigError("cluster.members must be a non-empty array of tables")
    members = []
    for i, m in enumerate(members_raw):
        if not isinstance(m, dict):
            raise ConfigError(f"cluster.members[{i}] must be a table")
        where = f"cluster.members[{i}]"
        members.append(
            Member(
                node_id=_string(m, "id", where),
                http=Address.parse(_string(m, "http", where), f"{where}.http"),
                raft=Address.parse(_string(m, "raft", where), f"{where}.raft"),
            )
        )
    ids = [m.node_id for m in members]
    if len(set(ids)) != len(ids):
        raise ConfigError("cluster.members has duplicate ids")
    if node_id not in ids:
        raise ConfigError(f"node.id {node_id!r} is not among cluster.members")
    try:
        tls = tls_from_mapping(raw.get("tls"))
        auth = auth_from_mapping(raw.get("auth"))
    except SecurityConfigError as exc:
        raise ConfigError(str(exc)) from None
    advertise_http, advertise_raft = _advertised(node, http, raft, members[ids.index(node_id)])
    if tls is not None and tls.http:
        members = [replace(m, scheme="https") for m in members]

    return Settings(
        node_id=node_id,
        http=http,
        raft=raft,
        data_dir=Path(chosen_dir),
        cluster_secret=secret.encode(),
        members=tuple(members),
        raft_settings=_dataclass_from(RaftSettings, raw.get("raft", {}), "raft"),
        http_settings=_dataclass_from(HttpSettings, raw.get("http", {}), "http"),
        log_level=(
            log_level or env.get("RAFT3D_LOG_LEVEL") or str(node.get("log_level", "INFO"))
        ).upper(),
        advertise_http=advertise_http,
        advertise_raft=advertise_raft,
        tls=tls,
        auth=auth,
    )


_ANY_HOST = frozenset({"0.0.0.0", "::", "[::]", ""})


def _advertised(
    node: Mapping[str, Any], http: Address, raft: Address, own: Member
) -> tuple[Address | None, Address | None]:
    """The optional ``node.advertise_*`` addresses, checked against this node's member entry.

    Everyone else learns where this node is from ``cluster.members``, so that entry must say
    what this node advertises; a wildcard bind address cannot be advertised at all.
    """
    found: list[Address | None] = []
    for kind, bound, listed in (("http", http, own.http), ("raft", raft, own.raft)):
        key = f"advertise_{kind}"
        text = node.get(key)
        if text is not None and not isinstance(text, str):
            raise ConfigError(f"node.{key} must be a 'host:port' string")
        advertised = Address.parse(text, f"node.{key}") if text else None
        public = advertised or bound
        if public.host in _ANY_HOST:
            raise ConfigError(
                f"node.{kind} binds to every interface ({bound}): set node.{key} to the "
                "address other nodes and clients should use"
            )
        if public != listed:
            source = f"node.{key}" if advertised else f"node.{kind}"
            raise ConfigError(
                f"cluster.members entry {own.node_id!r} has {kind} = {str(listed)!r}, but this "
                f"node advertises {str(public)!r} ({source})"
            )
        found.append(advertised)
    return found[0], found[1]


def _table(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"missing [{name}] table")
    return value


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty string")
    return value


def _dataclass_from(cls: type[T], raw: object, where: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"unknown setting {where}.{key}")
        default = getattr(cls(), key)
        if type(value) is not type(default) and not (
            isinstance(default, float) and type(value) is int
        ):
            raise ConfigError(f"{where}.{key} must be of type {type(default).__name__}")
        values[key] = value
    return replace(cls(), **values)  # type: ignore[type-var]
