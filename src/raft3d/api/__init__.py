"""The HTTP API: an aiohttp app serving SPEC §4 on any node of the cluster.

Modules, one job each:

- ``app``: ``create_app`` (routes, middlewares, shared state, forwarding session).
- ``ports``: ``NodePort``, the only thing the API needs from a Raft node.
- ``inputs``, ``schemas``: strict parsing of bodies, query strings and headers (4xx on error).
- ``farm``, ``cluster``: request handlers.
- ``events``: the event log (``GET /api/v1/events``), committed commands with their outcomes.
- ``snapshots``: list, read and take this node's snapshots (``/cluster/snapshots``).
- ``writes``, ``forwarding``: commit from any node (propose, or forward to the leader).
- ``reads``: linearizable reads through the node's read barrier, or local reads.
- ``idempotency``: ``Idempotency-Key`` tags carried in commands.
- ``rendering``, ``errors``, ``middleware``: results and errors as JSON responses.
- ``metrics``: a Prometheus registry per app (request metrics, node status gauges); the
  node's own counters come from ``raft3d.node.metrics.NodeCollector`` via ``collectors=``.
"""

from __future__ import annotations

from raft3d.api.app import create_app, register_collectors
from raft3d.api.ports import NodePort

__all__ = ["NodePort", "create_app", "register_collectors"]
