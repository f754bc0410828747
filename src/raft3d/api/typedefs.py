"""Typed keys for the application's shared state."""

from __future__ import annotations

from aiohttp import web

from raft3d.api.connections import ConnectionGuard
from raft3d.api.forwarding import LeaderForwarder
from raft3d.api.metrics import ApiMetrics
from raft3d.api.options import ApiOptions
from raft3d.api.ports import NodePort
from raft3d.api.snapshot_render import SnapshotRenderer
from raft3d.domain.results import Result
from raft3d.domain.state import FarmStateMachine

OPTIONS_KEY = web.AppKey("options", ApiOptions)
NODE_KEY = web.AppKey("node", NodePort[Result])
STATE_KEY = web.AppKey("state", FarmStateMachine)
METRICS_KEY = web.AppKey("metrics", ApiMetrics)
# Set by a cleanup context: the forwarder owns a client session tied to the app's lifetime.
FORWARDER_KEY = web.AppKey("forwarder", LeaderForwarder)
# The worker process that renders snapshot downloads (started on first use).
RENDERER_KEY = web.AppKey("snapshot_renderer", SnapshotRenderer)
# The listener's connection guard, when the app is served through one (``raft3d serve``):
# the app's middleware stops a connection's head clock while it handles a request.
GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)
