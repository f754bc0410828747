"""Prometheus metrics for one app: request counters and timings, node gauges, process stats.

Each app has its own ``CollectorRegistry`` (tests build many apps in one process). The node
adds its own metrics through ``raft3d.api.register_collectors`` or
``create_app(..., collectors=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from raft3d.api.ports import NodePort
from raft3d.domain.results import Result

UNMATCHED_ROUTE = "unmatched"
# Anything else is labelled "other" so that clients cannot inflate label cardinality.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class NodeStatusCollector(Collector):
    """Gauges read from ``node.status()`` at scrape time, so they are never stale."""

    def __init__(self, node: NodePort[Result]) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        status = self._node.status()
        gauges = {
            "raft3d_is_leader": ("1 if this node is the leader", int(status.role == "leader")),
            "raft3d_term": ("Current Raft term", status.term),
            "raft3d_commit_index": ("Highest log index known committed", status.commit_index),
            "raft3d_applied_index": ("Highest log index applied", status.applied_index),
            "raft3d_last_log_index": ("Index of the last log entry", status.last_log_index),
            "raft3d_snapshot_index": ("Last index in the newest snapshot", status.snapshot_index),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=value)
        reachable = GaugeMetricFamily(
            "raft3d_peer_reachable", "1 if the peer answered recently", labels=["peer"]
        )
        for peer in status.peers:
            reachable.add_metric([peer.node_id], int(peer.reachable))
        yield reachable


@dataclass(frozen=True, slots=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    # The labelled children by (route, method, status): ``labels()`` costs more than the
    # observation itself. Bounded like the labels (routes, known methods, statuses).
    _children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = field(default_factory=dict)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            label = method if method in KNOWN_METHODS else "other"
            children = (
                self.requests.labels(route=route, method=label, status=str(status)),
                self.duration.labels(route=route, method=label),
            )
            if method in KNOWN_METHODS:  # any other spelling is not kept (clients choose it)
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def create_metrics(node: NodePort[Result], collectors: Iterable[Collector] = ()) -> ApiMetrics:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(NodeStatusCollector(node))
    for collector in collectors:
        registry.register(collector)
    return ApiMetrics(
        registry=registry,
        requests=Counter(
            "raft3d_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        ),
        duration=Histogram(
            "raft3d_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            registry=registry,
        ),
    )


def route_label(request: web.Request) -> str:
    """The matched route template (never raw ids), or "unmatched"."""
    resource = request.match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical
