"""The metrics endpoint over a fake node: every listed name is exposed, node work is counted
and routes are labelled by their template."""

from __future__ import annotations

import json

from raft3d.node.status import PeerInfo
from raft3d.transport.stats import DROP_REASONS
from tests.support.fakes import (
    FakeNode,
    forwarded_by,
)
from tests.support.operability import (
    EXPECTED_METRICS,
    PRINTER,
    Client,
    call,
    scrape,
    seed,
)

# --- metrics ------------------------------------------------------------------------------


async def test_metrics_expose_every_listed_name(client: Client, node: FakeNode) -> None:
    node.peers = (PeerInfo("n2", "a:1", "http://a:2", True, None),)
    node.start_term(2)
    await seed(client)
    found = await scrape(client)
    names = {name for name, _ in found}
    assert set(EXPECTED_METRICS) <= names, sorted(set(EXPECTED_METRICS) - names)


async def test_metrics_count_node_work(client: Client, node: FakeNode) -> None:
    node.start_term(2)
    await seed(client)
    await call(client, "POST", "/cluster/snapshots", 201)
    node.leader_id = "n2"
    body = json.dumps(PRINTER).encode()
    forwarded = forwarded_by("n3", "POST", "/api/v1/printers", body)  # no forwarding loop
    await call(client, "POST", "/api/v1/printers", 503, data=body, headers=forwarded)
    await call(client, "POST", "/cluster/snapshots", 200)
    node.transport.dropped["bad_mac"] = 4
    found = await scrape(client)
    assert found[("raft3d_elections_total", ())] == 1
    assert found[("raft3d_snapshots_total", ())] == 1
    assert found[("raft3d_proposals_total", (("result", "committed"),))] == 3
    assert found[("raft3d_proposals_total", (("result", "not_leader"),))] == 1
    assert found[("raft3d_proposals_total", (("result", "outcome_unknown"),))] == 0
    assert found[("raft3d_apply_duration_seconds_count", ())] == 4  # no-op included
    assert found[("raft3d_transport_dropped_total", (("reason", "bad_mac"),))] == 4
    dropped = {dict(labels)["reason"] for name, labels in found if name.startswith("raft3d_tr")}
    assert dropped == set(DROP_REASONS)
    assert found[("raft3d_term", ())] == 2
    assert found[("raft3d_is_leader", ())] == 0


async def test_metrics_label_new_routes_by_template(client: Client, node: FakeNode) -> None:
    await seed(client)
    await call(client, "POST", "/api/v1/print_jobs/j1/status?status=running", 200)
    await call(client, "POST", "/cluster/snapshots", 201)
    await call(client, "GET", "/cluster/snapshots", 200)
    await call(client, "GET", "/cluster/snapshots/latest", 200)
    await call(client, "GET", "/api/v1/events?after=4", 200)
    await call(client, "GET", "/api/v1/events?after=-2", 400)
    found = await scrape(client)

    def requests(route: str, method: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return found.get(("raft3d_requests_total", labels), 0.0)

    assert requests("/api/v1/print_jobs/{id}/status", "POST", "200") == 1
    assert requests("/cluster/snapshots", "POST", "201") == 1
    assert requests("/cluster/snapshots", "GET", "200") == 1
    assert requests("/cluster/snapshots/latest", "GET", "200") == 1
    assert requests("/api/v1/events", "GET", "200") == 1
    assert requests("/api/v1/events", "GET", "400") == 1
    routes = {dict(labels).get("route") for name, labels in found if name.startswith("raft3d_req")}
    assert not any("j1" in str(route) or "?" in str(route) for route in routes)
