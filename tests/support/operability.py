"""The fake node's operability endpoints for tests: the app they are served by
(``operability_app``: node metrics and three members), the objects a test seeds (``seed``),
a request that checks its status (``call``) and a scrape of ``/metrics`` (``scrape``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from raft3d.node.metrics import NodeCollector
from tests.support.fakes import FakeNode, make_app, peers_named

Client = TestClient[web.Request, web.Application]

PRINTER = {"id": "p1", "company": "Creality", "model": "Ender 3"}
FILAMENT = {"id": "f1", "type": "PLA", "color": "red", "total_weight_in_grams": 1000}
JOB = {
    "id": "j1",
    "printer_id": "p1",
    "filament_id": "f1",
    "filepath": "prints/sword/hilt.gcode",
    "print_weight_in_grams": 300,
}
FILAMENT_STORED = {**FILAMENT, "remaining_weight_in_grams": 1000}
JOB_STORED = {**JOB, "status": "Queued"}


def operability_app(node: FakeNode) -> web.Application:
    """The API over ``node`` with the node's metrics collector and members n1, n2 and n3."""
    members = peers_named("n1", "n2", "n3")
    return make_app(node, collectors=[NodeCollector(node)], members=members)


async def call(client: Client, method: str, path: str, status: int, **kwargs: Any) -> Any:
    response = await client.request(method, path, **kwargs)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def seed(client: Client) -> None:
    await call(client, "POST", "/api/v1/printers", 201, json=PRINTER)
    await call(client, "POST", "/api/v1/filaments", 201, json=FILAMENT)
    await call(client, "POST", "/api/v1/print_jobs", 201, json=JOB)


def error_code(payload: Any) -> str:
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message", "details"}
    code: str = payload["error"]["code"]
    return code


EXPECTED_METRICS = (
    "raft3d_is_leader",
    "raft3d_term",
    "raft3d_commit_index",
    "raft3d_applied_index",
    "raft3d_last_log_index",
    "raft3d_snapshots_total",
    "raft3d_elections_total",
    "raft3d_peer_reachable",
    "raft3d_requests_total",
    "raft3d_request_duration_seconds_bucket",
    "raft3d_request_duration_seconds_count",
    "raft3d_request_duration_seconds_sum",
    "raft3d_proposals_total",
    "raft3d_apply_duration_seconds_count",
    "raft3d_apply_duration_seconds_sum",
    "raft3d_transport_dropped_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "python_info",
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    found: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found
