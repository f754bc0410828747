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
    heartbeat_ms = 200

    [http]                            # optional; defaults shown in HttpSettings
    request_timeout_s = 5.0

    [limits]                          # optional; defaults shown in LimitSettings
    max_print_jobs = 1000000

``[tls]`` and ``[auth]`` are described in ``raft3d.security.settings``.

Environment overrides: ``RAFT3D_DATA_DIR``, ``RAFT3D_CLUSTER_SECRET``, ``RAFT3D_HTTP``,
``RAFT3D_LOG_LEVEL``.

Every value is checked when the file is loaded (type, range, and the relations between
values of a section), so a node never starts with a setting it would misbehave on. Each
section is a frozen dataclass; a field's range is declared beside it (``bounded``) and checked
generically (``raft3d.config_values``), and relations between fields of a section live in
that section's ``check()``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from raft3d.api.options import ApiOptions

# ConfigError is raised here and named by importers of this module.
from raft3d.config_values import ConfigError as ConfigError
from raft3d.config_values import bounded, read_section, read_string, read_table
from raft3d.security.settings import (
    AuthSettings,
    SecurityConfigError,
    TlsSettings,
    auth_from_mapping,
    tls_from_mapping,
)

MIB = 1024 * 1024

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The secret shipped in conf/ for the laptop demo; a node using it says so at start.
DEMO_SECRET = "raft3d-local-demo-secret-do-not-use-in-production"


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
    tick_ms: int = bounded(10, 1, 1000)
    # Every heartbeat costs each idle node a few wakeups; 200 ms keeps an idle node near
    # 0.003 cores (50 ms cost 0.016-0.025 on the leader). It only bounds how soon a silent
    # leader is noticed: writes, commits and reads never wait for a heartbeat.
    heartbeat_ms: int = bounded(200, 1, 60_000)
    # Randomized per election in [this, 2 * this). Failover after a crash does not wait for
    # it: a follower whose connection to the leader breaks campaigns within
    # lost_leader_campaign_ms (or three heartbeats, if sooner). It applies when the leader
    # falls silent with its connections open (a hung process, a partition), and to the
    # retry after a split vote (with 1000 ms those took 1.4-1.7 s in consensus_bench).
    election_timeout_ms: int = bounded(600, 2, 3_600_000)
    lost_leader_campaign_ms: int = bounded(150, 1, 3_600_000)
    pre_vote: bool = True
    check_quorum: bool = True
    max_entry_bytes: int = bounded(64 * 1024, 1, 4 * MIB)
    # Below the transport's 8 MiB frame limit, with room for the message around a payload.
    max_msg_bytes: int = bounded(1024 * 1024, 1024, 4 * MIB)
    max_inflight_msgs: int = bounded(256, 1, 1_000_000)
    snapshot_threshold: int = bounded(10_000, 1, None)  # applied entries between snapshots
    # ...and only once those entries' bytes reach this fraction of the last snapshot's size:
    # writing a big state again costs more than replaying a small log.
    snapshot_log_ratio: float = bounded(0.1, 0.0, 1000.0)
    # Log entries kept after a snapshot, for event readers and slightly lagging followers.
    snapshot_trailing_entries: int = bounded(5_000, 0, 10_000_000)
    snapshots_keep: int = bounded(2, 1, 1000)
    snapshot_stagger: bool = True  # members snapshot at different indexes, not all at once
    snapshot_chunk_bytes: int = bounded(256 * 1024, 1024, 4 * MIB)

    def check(self) -> None:
        """Relations between the values (each one is already in its own range)."""
        if self.heartbeat_ms < self.tick_ms:
            raise ConfigError(
                f"raft.heartbeat_ms ({self.heartbeat_ms}) must be at least raft.tick_ms "
                f"({self.tick_ms})"
            )
        if self.election_timeout_ms < 2 * self.heartbeat_ms:
            raise ConfigError(
                f"raft.election_timeout_ms ({self.election_timeout_ms}) must be at least twice "
                f"raft.heartbeat_ms ({self.heartbeat_ms}), or followers start elections "
                "while the leader is alive"
            )
        if self.max_entry_bytes > self.max_msg_bytes:
            raise ConfigError(
                f"raft.max_entry_bytes ({self.max_entry_bytes}) must not exceed "
                f"raft.max_msg_bytes ({self.max_msg_bytes}): an entry must fit in a message"
            )

    @property
    def heartbeat_ticks(self) -> int:
        return max(1, self.heartbeat_ms // self.tick_ms)

    @property
    def election_ticks(self) -> int:
        return max(2, self.election_timeout_ms // self.tick_ms)

    @property
    def lost_leader_ticks(self) -> int:
        """Within lost_leader_campaign_ms, or three heartbeats if that is sooner."""
        return max(1, min(self.lost_leader_campaign_ms, 3 * self.heartbeat_ms) // self.tick_ms)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    request_timeout_s: float = bounded(5.0, 0.001, 3600.0)
    max_body_bytes: int = bounded(1024 * 1024, 1, 1024 * MIB)
    # A client must send a whole request head (line and headers) within this many seconds
    # of its first byte; slower connections are closed (slowloris).
    header_timeout_s: float = bounded(10.0, 0.001, 3600.0)
    # An idle keep-alive connection is closed after this many seconds.
    keepalive_timeout_s: float = bounded(30.0, 0.001, 86_400.0)
    # Open client connections per node; over it a connection gets 503 and is closed. The node
    # also keeps this below its file-descriptor limit (see raft3d.api.connections).
    max_connections: int = bounded(1000, 1, 1_000_000)
    # Comment lines on idle /api/v1/events/stream connections, and how many events a stream
    # may lag behind before it is cut off.
    sse_heartbeat_s: float = bounded(15.0, 0.01, 3600.0)
    sse_buffer_events: int = bounded(4096, 1, 10_000_000)
    # HTTP front processes beside the node process, on the same port (raft3d.front); 0: none.
    workers: int = bounded(0, 0, 64)
    # With workers: whether the node process accepts client connections too (false: only
    # its fronts do, and its event loop parses no client HTTP at all).
    node_listens: bool = True

    def check(self) -> None:
        """No relations between the HTTP values yet; each is checked against its range."""


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Quotas on objects in the farm: creating one more is refused with ``quota_exceeded``."""

    max_printers: int = bounded(100_000, 0, None)
    max_filaments: int = bounded(100_000, 0, None)
    max_print_jobs: int = bounded(2_000_000, 0, None)

    def check(self) -> None:
        """No relations between the quotas; each is checked against its range."""


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
    limits: LimitSettings = field(default_factory=LimitSettings)
    log_level: str = "INFO"
    # Deployment across hosts (SPEC §9); the defaults are the local demo's.
    advertise_http: Address | None = None  # None: the bind address, node.http
    advertise_raft: Address | None = None  # None: the bind address, node.raft
    tls: TlsSettings | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)
    # Start as a node that joins an existing cluster (``raft3d serve --join``): with a blank
    # data directory it is nobody's voter until a leader adds it; ``members`` may then list
    # only this node. Ignored once the data directory holds an identity.
    joining: bool = False

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
    def uses_demo_secret(self) -> bool:
        return self.cluster_secret == DEMO_SECRET.encode()

    @property
    def peers(self) -> tuple[Member, ...]:
        """Every member but this node."""
        return tuple(m for m in self.members if m.node_id != self.node_id)

    def member(self, node_id: str) -> Member | None:
        return next((m for m in self.members if m.node_id == node_id), None)


def api_options(settings: Settings) -> ApiOptions:
    """What the HTTP layer is told about this node (``raft3d.api.options``)."""
    return ApiOptions(
        node_id=settings.node_id,
        own_url=f"{settings.http_scheme}://{settings.public_http}",
        member_urls={m.node_id: m.http_url for m in settings.members},
        cluster_secret=settings.cluster_secret,
        auth=settings.auth,
        request_timeout_s=settings.http_settings.request_timeout_s,
        max_body_bytes=settings.http_settings.max_body_bytes,
        quotas={
            "printers": settings.limits.max_printers,
            "filaments": settings.limits.max_filaments,
            "print_jobs": settings.limits.max_print_jobs,
        },
        sse_heartbeat_s=settings.http_settings.sse_heartbeat_s,
        sse_buffer_events=settings.http_settings.sse_buffer_events,
        forward_keepalive_s=min(5.0, settings.http_settings.keepalive_timeout_s / 2),
    )


def load_settings(
    path: str | Path,
    *,
    data_dir: str | Path | None = None,
    log_level: str | None = None,
    env: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> Settings:
    """Read a node's TOML file; command-line values win over the environment, which wins over
    the file (``workers`` is checked as ``http.workers`` would be)."""
    env = os.environ if env is None else env
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from exc
    if workers is not None:
        http = raw.get("http", {})
        raw = {**raw, "http": {**http, "workers": workers} if isinstance(http, dict) else http}
    return settings_from_mapping(raw, data_dir=data_dir, log_level=log_level, env=env)


# Top-level tables a node file may have; anything else is a typo and is refused.
SECTIONS = frozenset({"node", "cluster", "raft", "http", "limits", "tls", "auth"})


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    data_dir: str | Path | None = None,
    log_level: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    env = {} if env is None else env
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (known: {', '.join(sorted(SECTIONS))})")
    node = read_table(raw, "node")
    cluster = read_table(raw, "cluster")
    node_id = read_string(node, "id", "node")
    http = Address.parse(env.get("RAFT3D_HTTP") or read_string(node, "http", "node"), "node.http")
    raft = Address.parse(read_string(node, "raft", "node"), "node.raft")
    if http == raft:
        raise ConfigError(f"node.http and node.raft must differ, both are {http}")
    chosen_dir = data_dir or env.get("RAFT3D_DATA_DIR") or read_string(node, "data_dir", "node")
    secret = env.get("RAFT3D_CLUSTER_SECRET") or read_string(cluster, "secret", "cluster")
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
                node_id=read_string(m, "id", where),
                http=Address.parse(read_string(m, "http", where), f"{where}.http"),
                raft=Address.parse(read_string(m, "raft", where), f"{where}.raft"),
            )
        )
    ids = [m.node_id for m in members]
    if len(set(ids)) != len(ids):
        raise ConfigError("cluster.members has duplicate ids")
    if node_id not in ids:
        raise ConfigError(f"node.id {node_id!r} is not among cluster.members")
    level = (log_level or env.get("RAFT3D_LOG_LEVEL") or str(node.get("log_level", "INFO"))).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
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
        raft_settings=read_section(RaftSettings, raw, "raft"),
        http_settings=read_section(HttpSettings, raw, "http"),
        limits=read_section(LimitSettings, raw, "limits"),
        log_level=level,
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
