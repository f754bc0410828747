"""The HTTP API's endpoints over a fake node: success paths, reads, cluster and metrics."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from pytest_aiohttp import AiohttpClient

from raft3d.api import register_collectors
from raft3d.api.rendering import REJECTION_STATUS
from raft3d.domain.results import RejectionCode
from raft3d.node.errors import NoLeaderError
from raft3d.node.status import PeerInfo
from tests.support.fakes import FakeNode, make_app
from tests.support.operability import FILAMENT, JOB, PRINTER, Client


@pytest.fixture
def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    return await aiohttp_client(make_app(node))


async def post(client: Client, path: str, body: object, status: int) -> Any:
    response = await client.post(path, json=body)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def get(client: Client, path: str) -> Any:
    response = await client.get(path)
    payload = await response.json()
    assert response.status == 200, payload
    return payload


async def seed(client: Client) -> None:
    await post(client, "/api/v1/printers", PRINTER, 201)
    await post(client, "/api/v1/filaments", FILAMENT, 201)
    await post(client, "/api/v1/print_jobs", JOB, 201)


def error_code(payload: Any) -> str:
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message", "details"}
    code: str = payload["error"]["code"]
    return code


# --- printers and filaments -------------------------------------------------------------


async def test_create_printer_returns_it_and_lists_it(client: Client) -> None:
    assert await post(client, "/api/v1/printers", PRINTER, 201) == PRINTER
    assert await get(client, "/api/v1/printers") == [PRINTER]


async def test_integer_id_is_stored_as_decimal_string(client: Client) -> None:
    created = await post(client, "/api/v1/printers", {**PRINTER, "id": 42}, 201)
    assert created["id"] == "42"


async def test_omitted_id_is_generated(client: Client, node: FakeNode) -> None:
    body = {"company": "Prusa", "model": "MK4"}
    first = await post(client, "/api/v1/printers", body, 201)
    second = await post(client, "/api/v1/printers", body, 201)
    assert len(first["id"]) == 32 and int(first["id"], 16) >= 0
    assert first["id"] != second["id"]
    assert [p.id for p in node.state.printers()] == [first["id"], second["id"]]


async def test_lists_keep_creation_order(client: Client) -> None:
    for name in ("zeta", "alpha", "mid"):
        await post(client, "/api/v1/printers", {**PRINTER, "id": name}, 201)
    assert [p["id"] for p in await get(client, "/api/v1/printers")] == ["zeta", "alpha", "mid"]


async def test_filament_type_is_case_insensitive_and_remaining_defaults_to_total(
    client: Client,
) -> None:
    created = await post(client, "/api/v1/filaments", {**FILAMENT, "type": "petg"}, 201)
    assert created == {**FILAMENT, "type": "PETG", "remaining_weight_in_grams": 1000}
    partial = {**FILAMENT, "id": "f2", "type": "Tpu", "remaining_weight_in_grams": 0}
    assert (await post(client, "/api/v1/filaments", partial, 201))["type"] == "TPU"
    assert [f["id"] for f in await get(client, "/api/v1/filaments")] == ["f1", "f2"]


async def test_duplicate_id_is_409(client: Client, node: FakeNode) -> None:
    await post(client, "/api/v1/printers", PRINTER, 201)
    payload = await post(client, "/api/v1/printers", {**PRINTER, "model": "other"}, 409)
    assert error_code(payload) == "duplicate_id"
    assert await get(client, "/api/v1/printers") == [PRINTER]


# --- print jobs -------------------------------------------------------------------------


async def test_create_job_is_queued(client: Client) -> None:
    await post(client, "/api/v1/printers", PRINTER, 201)
    await post(client, "/api/v1/filaments", FILAMENT, 201)
    created = await post(client, "/api/v1/print_jobs", {**JOB, "status": "queued"}, 201)
    assert created == {**JOB, "status": "Queued"}
    assert await get(client, "/api/v1/print_jobs") == [created]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"printer_id": "nope"}, 422, "unknown_printer"),
        ({"filament_id": "nope"}, 422, "unknown_filament"),
        ({"print_weight_in_grams": 1001}, 409, "insufficient_filament"),
    ],
)
async def test_job_rules_are_enforced(
    client: Client, node: FakeNode, change: dict[str, object], status: int, code: str
) -> None:
    await post(client, "/api/v1/printers", PRINTER, 201)
    await post(client, "/api/v1/filaments", FILAMENT, 201)
    before = node.state.digest()
    assert error_code(await post(client, "/api/v1/print_jobs", {**JOB, **change}, status)) == code
    assert node.state.digest() == before


async def test_reservations_count_other_queued_jobs(client: Client) -> None:
    await seed(client)  # j1 reserves 300 of 1000
    await post(client, "/api/v1/print_jobs", {**JOB, "id": "j2", "print_weight_in_grams": 700}, 201)
    payload = await post(
        client, "/api/v1/print_jobs", {**JOB, "id": "j3", "print_weight_in_grams": 1}, 409
    )
    assert error_code(payload) == "insufficient_filament"


async def test_status_change_through_query_body_and_put(client: Client) -> None:
    await seed(client)
    running = await post(client, "/api/v1/print_jobs/j1/status?status=RUNNING", None, 200)
    assert running == {**JOB, "status": "Running"}
    response = await client.put("/api/v1/print_jobs/j1/status", json={"status": "done"})
    assert response.status == 200
    assert (await response.json())["status"] == "Done"
    # Done consumes the job's weight from its roll (SPEC rule 4).
    assert (await get(client, "/api/v1/filaments"))[0]["remaining_weight_in_grams"] == 700


@pytest.mark.parametrize("spelling", ["canceled", "cancelled", "Cancelled", "CANCELED"])
async def test_both_spellings_of_cancelled(client: Client, spelling: str) -> None:
    await seed(client)
    payload = await post(client, "/api/v1/print_jobs/j1/status", {"status": spelling}, 200)
    assert payload["status"] == "Cancelled"


async def test_same_status_in_query_and_body_is_fine(client: Client) -> None:
    await seed(client)
    path = "/api/v1/print_jobs/j1/status?status=running"
    assert (await post(client, path, {"status": "Running"}, 200))["status"] == "Running"


async def test_illegal_transition_is_409_and_unknown_job_is_404(client: Client) -> None:
    await seed(client)
    payload = await post(client, "/api/v1/print_jobs/j1/status?status=done", None, 409)
    assert error_code(payload) == "illegal_transition"
    payload = await post(client, "/api/v1/print_jobs/j1/status?status=queued", None, 409)
    assert error_code(payload) == "illegal_transition"
    payload = await post(client, "/api/v1/print_jobs/nope/status?status=running", None, 404)
    assert error_code(payload) == "job_not_found"
    assert (await get(client, "/api/v1/print_jobs"))[0]["status"] == "Queued"


async def test_job_list_filter_is_case_insensitive(client: Client) -> None:
    await seed(client)
    await post(client, "/api/v1/print_jobs", {**JOB, "id": "j2", "print_weight_in_grams": 1}, 201)
    await post(client, "/api/v1/print_jobs/j2/status?status=running", None, 200)
    assert [j["id"] for j in await get(client, "/api/v1/print_jobs?status=queued")] == ["j1"]
    assert [j["id"] for j in await get(client, "/api/v1/print_jobs?status=RUNNING")] == ["j2"]
    assert await get(client, "/api/v1/print_jobs?status=Canceled") == []
    assert [j["id"] for j in await get(client, "/api/v1/print_jobs")] == ["j1", "j2"]


def test_every_rejection_code_has_an_http_status() -> None:
    assert set(REJECTION_STATUS) == set(RejectionCode)


# --- reads and headers ------------------------------------------------------------------


async def test_reads_are_linearizable_by_default(client: Client, node: FakeNode) -> None:
    await get(client, "/api/v1/printers")
    await get(client, "/api/v1/filaments?consistency=linearizable")
    await get(client, "/api/v1/print_jobs?consistency=LINEARIZABLE&status=queued")
    assert node.barriers == 3
    await get(client, "/api/v1/printers?consistency=local")
    assert node.barriers == 3


@pytest.mark.parametrize(
    ("error", "code"), [(NoLeaderError("no leader"), "no_leader"), (TimeoutError(), "timeout")]
)
async def test_read_without_quorum_is_503_but_local_read_works(
    client: Client, node: FakeNode, error: BaseException, code: str
) -> None:
    await post(client, "/api/v1/printers", PRINTER, 201)
    node.fail_barriers(error)
    response = await client.get("/api/v1/printers")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert error_code(await response.json()) == code
    node.fail_barriers(error)
    assert await get(client, "/api/v1/printers?consistency=local") == [PRINTER]


async def test_a_local_read_from_a_node_restoring_a_snapshot_is_a_clear_503(
    client: Client, node: FakeNode
) -> None:
    # Issue 8: while a big snapshot is restored in slices, the old state is stale (maybe empty).
    await post(client, "/api/v1/printers", PRINTER, 201)
    node.restoring = True
    response = await client.get("/api/v1/printers?consistency=local")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert error_code(await response.json()) == "restoring"
    assert await get(client, "/api/v1/printers") == [PRINTER]  # linearizable: waits, answers
    node.restoring = False
    assert await get(client, "/api/v1/printers?consistency=local") == [PRINTER]


async def test_every_response_names_the_node_and_its_applied_index(client: Client) -> None:
    await seed(client)
    for response, applied in (
        (await client.get("/api/v1/printers"), "3"),
        (await client.post("/api/v1/printers", json={**PRINTER, "id": "p2"}), "4"),
        (await client.post("/api/v1/printers", json={"bad": 1}), "4"),
        (await client.post("/api/v1/printers", json=PRINTER), "5"),  # 409: still an entry
        (await client.get("/no/such/route"), "5"),
        (await client.delete("/api/v1/printers"), "5"),
        (await client.get("/cluster/status"), "5"),
    ):
        assert response.headers["X-Raft3D-Node"] == "n1"
        assert response.headers["X-Raft3D-Applied-Index"] == applied


# --- cluster endpoints ------------------------------------------------------------------


async def test_cluster_status(client: Client, node: FakeNode) -> None:
    node.peers = (PeerInfo("n2", "127.0.0.1:9081", "http://127.0.0.1:8081", True, 3),)
    await post(client, "/api/v1/printers", PRINTER, 201)
    assert await get(client, "/cluster/status") == {
        "node_id": "n1",
        "role": "leader",
        "term": 1,
        "leader_id": "n1",
        "leader_http": None,
        "commit_index": 1,
        "applied_index": 1,
        "last_log_index": 1,
        "snapshot_index": 0,
        "peers": [
            {
                "node_id": "n2",
                "raft_addr": "127.0.0.1:9081",
                "http_addr": "http://127.0.0.1:8081",
                "reachable": True,
                "match_index": 3,
                "suffrage": "voter",
            }
        ],
        "suffrage": "voter",
        "recovering": False,
        "cluster_id": "",
        "pid": os.getpid(),
    }


async def test_healthz_and_readyz(client: Client, node: FakeNode) -> None:
    assert await get(client, "/healthz") == {"status": "ok"}
    assert (await get(client, "/readyz"))["status"] == "ready"

    node.commit_index_lag = 2
    response = await client.get("/readyz")
    assert response.status == 503
    assert error_code(await response.json()) == "not_ready"

    node.commit_index_lag = 0
    node.leader_id = None
    response = await client.get("/readyz")
    assert response.status == 503
    payload = await response.json()
    assert payload["error"]["message"] == "no leader is known"

    node.leader_id = "n1"
    node.restoring = True  # applied may even equal commit: a restore is still not ready
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["error"]["message"] == "restoring its state from a snapshot"
    assert await get(client, "/healthz") == {"status": "ok"}


# --- metrics ----------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return samples(await response.text())


async def test_metrics_label_routes_by_template(client: Client) -> None:
    await seed(client)
    await post(client, "/api/v1/print_jobs/j1/status?status=running", None, 200)
    await client.get("/nowhere/j1")
    found = await scrape(client)

    def requests(route: str, method: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return found.get(("raft3d_requests_total", labels), 0.0)

    assert requests("/api/v1/print_jobs/{id}/status", "POST", "200") == 1
    assert requests("/api/v1/printers", "POST", "201") == 1
    assert requests("unmatched", "GET", "404") == 1
    assert not any("j1" in str(labels) for _, labels in found)
    labels = (("method", "POST"), ("route", "/api/v1/printers"))
    assert found[("raft3d_request_duration_seconds_count", labels)] == 1


async def test_metrics_report_node_status_and_process(client: Client, node: FakeNode) -> None:
    node.peers = (
        PeerInfo("n2", "a:1", "http://a:2", True, None),
        PeerInfo("n3", "b:1", "http://b:2", False, None),
    )
    node.term = 7
    await post(client, "/api/v1/printers", PRINTER, 201)
    found = await scrape(client)
    assert found[("raft3d_is_leader", ())] == 1
    assert found[("raft3d_term", ())] == 7
    assert found[("raft3d_applied_index", ())] == 1
    assert found[("raft3d_commit_index", ())] == 1
    assert found[("raft3d_last_log_index", ())] == 1
    assert found[("raft3d_peer_reachable", (("peer", "n2"),))] == 1
    assert found[("raft3d_peer_reachable", (("peer", "n3"),))] == 0
    assert ("process_resident_memory_bytes", ()) in found


class ElectionCounter(Collector):
    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("raft3d_elections", "Elections started", value=3)


async def test_extra_collectors_can_be_registered(aiohttp_client: AiohttpClient) -> None:
    app = make_app(FakeNode("n1"))
    register_collectors(app, ElectionCounter())
    client = await aiohttp_client(app)
    assert (await scrape(client))[("raft3d_elections_total", ())] == 3
    # Each app has its own registry: another app in this process does not see it.
    other = await aiohttp_client(make_app(FakeNode("n2")))
    assert ("raft3d_elections_total", ()) not in await scrape(other)
