"""The node's own Prometheus metrics, read from its counters at scrape time.

``NodeCollector`` reports what the node counts (``RaftNode.counters``) and what its transport
dropped. Gauges derived from ``status()`` (term, role, indexes, peer reachability) belong to
the HTTP layer's collector, so the two never report the same name. It depends on
prometheus_client only, not on the HTTP layer: any registry can take it.

Metrics (counters get prometheus_client's ``_total`` suffix):

- ``raft3d_elections_total``: elections this node started (each new candidate term).
- ``raft3d_snapshots_total``: snapshots this node took of its own state.
- ``raft3d_proposals_total{result}``: proposals by how they ended: ``committed``,
  ``outcome_unknown`` (leadership lost or deadline passed first), ``not_leader``.
- ``raft3d_forwarded_proposals_total{event}``: proposals forwarded over the peer link:
  ``sent`` by this follower, ``received`` and ``refused`` by this leader, ``lost`` (sent, no
  answer: in doubt), ``replaced`` (another entry took its index: sent again) and
  ``unsent`` (dropped at once, the link's send queue full: safe to retry).
- ``raft3d_apply_duration_seconds``: a summary: ``_count`` entries applied to the state
  machine, ``_sum`` seconds spent applying them. The node times whole batches, so there are
  no per-entry quantiles; ``rate(_sum) / rate(_count)`` is the mean time per entry.
- ``raft3d_transport_dropped_total{reason}``: peer messages, frames or connections the
  transport dropped, for every reason it knows (zeros included).
- ``raft3d_gc_frozen_objects``: objects in the collector's permanent generation
  (``gc.get_freeze_count()``, process-wide): what ``raft3d.node.heap`` froze and is still
  alive. Frozen objects are never collected, so a count that keeps growing under a steady
  load is garbage cycles frozen before they died: a leak.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from raft3d.node.forwarding import FORWARD_EVENTS
from raft3d.transport.stats import DROP_REASONS

# Always reported, at zero until they happen, so that rates and alerts have a series to use.
PROPOSAL_RESULTS = ("committed", "outcome_unknown", "not_leader")


class Counters(Protocol):
    """What the collector reads of ``raft3d.node.driver.NodeCounters``."""

    @property
    def elections(self) -> int: ...

    @property
    def snapshots(self) -> int: ...

    @property
    def proposals(self) -> Mapping[str, int]: ...

    @property
    def forwarded(self) -> Mapping[str, int]: ...

    @property
    def apply_seconds_total(self) -> float: ...

    @property
    def applied_entries(self) -> int: ...


class DropCounts(Protocol):
    @property
    def dropped(self) -> Mapping[str, int]: ...


class CountingNode(Protocol):
    """What the collector reads of a ``RaftNode``."""

    @property
    def counters(self) -> Counters: ...

    @property
    def transport(self) -> DropCounts: ...


class NodeCollector(Collector):
    def __init__(self, node: CountingNode) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        counters = self._node.counters
        yield CounterMetricFamily(
            "raft3d_elections", "Elections this node started", value=counters.elections
        )
        yield CounterMetricFamily(
            "raft3d_snapshots", "Snapshots this node took of its state", value=counters.snapshots
        )
        yield _labelled_counter(
            "raft3d_proposals",
            "Proposals on this node, by how they ended",
            "result",
            counters.proposals,
            PROPOSAL_RESULTS,
        )
        yield _labelled_counter(
            "raft3d_forwarded_proposals",
            "Proposals forwarded to the leader over the peer link, by event",
            "event",
            counters.forwarded,
            FORWARD_EVENTS,
        )
        yield SummaryMetricFamily(
            "raft3d_apply_duration_seconds",
            "Seconds spent applying committed entries to the state machine (count: entries)",
            count_value=counters.applied_entries,
            sum_value=counters.apply_seconds_total,
        )
        yield _labelled_counter(
            "raft3d_transport_dropped",
            "Peer messages, frames or connections the transport dropped, by reason",
            "reason",
            self._node.transport.dropped,
            DROP_REASONS,
        )
        yield GaugeMetricFamily(
            "raft3d_gc_frozen_objects",
            "Objects in the garbage collector's permanent generation (never collected)",
            value=gc.get_freeze_count(),
        )


def _labelled_counter(
    name: str, documentation: str, label: str, values: Mapping[str, int], always: tuple[str, ...]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    # Known values first, in their documented order, then any the node added since.
    for key in (*always, *sorted(set(values) - set(always))):
        family.add_metric([key], values.get(key, 0))
    return family
