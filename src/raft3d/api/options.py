"""What the HTTP layer needs to know about its node, declared here by the layer that uses it.

``raft3d.config`` builds it from a node's settings (``config.api_options``); the API never
sees the whole ``Settings``, so it does not depend on how a node file is laid out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from raft3d.security.settings import AuthSettings


@dataclass(frozen=True, slots=True)
class ApiOptions:
    node_id: str
    # This node's own URL as clients and the other members reach it (scheme://host:port).
    own_url: str
    # Every member's HTTP URL by node id: where a write is forwarded when the node's status
    # does not (yet) name its leader's address, and who may sign forwarded requests.
    member_urls: Mapping[str, str]
    # The cluster secret: forwarded requests are signed with a key derived from it.
    cluster_secret: bytes
    auth: AuthSettings
    request_timeout_s: float
    max_body_bytes: int
    # Object quotas by kind ("printers", "filaments", "print_jobs").
    quotas: Mapping[str, int]
    # /api/v1/events/stream: seconds between heartbeat comments on an idle stream, and how
    # many events a stream may lag behind before it is cut off.
    sse_heartbeat_s: float = 15.0
    sse_buffer_events: int = 4096
    # Forwarded writes reuse kept-alive connections to the leader, closed after this many
    # idle seconds: sooner than the leader closes them itself (its http.keepalive_timeout_s),
    # so a pooled connection is not reused just as the leader drops it.
    forward_keepalive_s: float = 5.0
