"""Operability endpoints over a fake node: snapshots, the event log and the node's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from raft3d.api.events import command_payload
from raft3d.domain.commands import CreatePrinter, decode_command, encode_command
from raft3d.node.errors import NoLeaderError
from raft3d.node.metrics import NodeCollector
from raft3d.node.status import PeerInfo
from raft3d.storage.errors import StorageCorruptError
from raft3d.transport.stats import DROP_REASONS
from tests.support.fakes import (
    FakeEntry,
    FakeNode,
    forwarded_by,
    make_app,
    peers_named,
    serve_single_voter,
)

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


@pytest.fixture
def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    members = peers_named("n1", "n2", "n3")
    return await aiohttp_client(make_app(node, collectors=[NodeCollector(node)], members=members))


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


# --- snapshots: taking and listing --------------------------------------------------------


async def test_no_snapshots_at_first(client: Client, node: FakeNode) -> None:
    assert await call(client, "GET", "/cluster/snapshots", 200) == {"snapshots": []}
    payload = await call(client, "POST", "/cluster/snapshots", 409)
    assert error_code(payload) == "nothing_to_snapshot"
    assert payload["error"]["details"] == {"applied_index": 0}
    assert node.snapshot_files == []


async def test_take_snapshot_then_list_newest_first(client: Client, node: FakeNode) -> None:
    await seed(client)
    first = await call(client, "POST", "/cluster/snapshots", 201)
    assert first == {
        "index": 3,
        "term": 1,
        "size": node.snapshot_files[0].size,
        "created_at": "2023-11-14T22:13:20.000Z",
    }
    assert node.snapshot_index == 3

    node.term = 2
    await call(client, "POST", "/api/v1/printers", 201, json={**PRINTER, "id": "p2"})
    second = await call(client, "POST", "/cluster/snapshots", 201)
    assert (second["index"], second["term"]) == (4, 2)
    assert second["created_at"] == "2023-11-14T22:13:21.500Z"

    assert await call(client, "GET", "/cluster/snapshots", 200) == {"snapshots": [second, first]}


async def test_take_snapshot_with_nothing_new_returns_the_current_one(
    client: Client, node: FakeNode
) -> None:
    await seed(client)
    taken = await call(client, "POST", "/cluster/snapshots", 201)
    again = await call(client, "POST", "/cluster/snapshots", 200)
    assert {k: v for k, v in again.items() if k != "note"} == taken
    assert "no new snapshot was taken" in again["note"]
    assert len(node.snapshot_files) == 1
    assert node.counters.snapshots == 1


async def test_only_the_kept_snapshots_are_listed(client: Client, node: FakeNode) -> None:
    for n in range(3):
        await call(client, "POST", "/api/v1/printers", 201, json={**PRINTER, "id": f"p{n}"})
        await call(client, "POST", "/cluster/snapshots", 201)
    listed = (await call(client, "GET", "/cluster/snapshots", 200))["snapshots"]
    assert [s["index"] for s in listed] == [3, 2]


async def test_a_follower_takes_its_own_snapshot(client: Client, node: FakeNode) -> None:
    await seed(client)
    node.leader_id = "n2"  # never forwarded: snapshots are per node
    assert (await call(client, "POST", "/cluster/snapshots", 201))["index"] == 3
    assert node.snapshot_index == 3


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/cluster/snapshots?now=1", {}),
        ("/cluster/snapshots", {"json": {"index": 3}}),
        ("/cluster/snapshots", {"data": b"not json", "headers": {"Content-Type": "text/plain"}}),
        ("/cluster/snapshots", {"data": b"[1]"}),
    ],
)
async def test_take_snapshot_refuses_parameters_and_changes_nothing(
    client: Client, node: FakeNode, path: str, kwargs: dict[str, Any]
) -> None:
    await seed(client)
    response = await client.post(path, **kwargs)
    assert 400 <= response.status < 500
    error_code(await response.json())
    assert node.snapshot_files == []
    assert len(node.log) == 3


async def test_take_snapshot_accepts_an_empty_object_body(client: Client, node: FakeNode) -> None:
    await seed(client)
    assert (await call(client, "POST", "/cluster/snapshots", 201, json={}))["index"] == 3


async def test_snapshot_listing_refuses_query_parameters(client: Client) -> None:
    for path in ("/cluster/snapshots?limit=1", "/cluster/snapshots/latest?consistency=local"):
        assert error_code(await call(client, "GET", path, 400)) == "invalid_query"


# --- snapshots: the latest one as JSON ----------------------------------------------------


async def test_latest_snapshot_is_404_when_there_is_none(client: Client) -> None:
    payload = await call(client, "GET", "/cluster/snapshots/latest", 404)
    assert error_code(payload) == "no_snapshot"


async def test_latest_snapshot_holds_the_state_it_was_taken_at(
    client: Client, node: FakeNode
) -> None:
    await seed(client)
    await call(client, "POST", "/api/v1/print_jobs/j1/status?status=running", 200)
    await call(client, "POST", "/cluster/snapshots", 201)
    # Changes after the snapshot are not in it: it is decoded from the snapshot, not live state.
    await call(client, "POST", "/api/v1/printers", 201, json={**PRINTER, "id": "p2"})
    await call(client, "POST", "/api/v1/print_jobs/j1/status?status=done", 200)

    latest = await call(client, "GET", "/cluster/snapshots/latest", 200)
    assert latest == {
        "index": 4,
        "term": 1,
        "created_at": "2023-11-14T22:13:20.000Z",
        "state": {
            "printers": [PRINTER],
            "filaments": [FILAMENT_STORED],
            "print_jobs": [{**JOB, "status": "Running"}],
        },
    }
    assert node.barriers == 0  # per node: no read barrier


async def test_latest_snapshot_follows_the_newest(client: Client, node: FakeNode) -> None:
    await seed(client)
    await call(client, "POST", "/cluster/snapshots", 201)
    await call(client, "POST", "/api/v1/print_jobs/j1/status?status=cancelled", 200)
    await call(client, "POST", "/cluster/snapshots", 201)
    latest = await call(client, "GET", "/cluster/snapshots/latest", 200)
    assert latest["index"] == 4
    assert latest["state"]["print_jobs"] == [{**JOB, "status": "Cancelled"}]
    assert latest["state"]["printers"] == [p.to_dict() for p in node.state.printers()]


async def test_unreadable_snapshot_is_a_json_500(client: Client, node: FakeNode) -> None:
    await seed(client)
    await call(client, "POST", "/cluster/snapshots", 201)
    node.snapshot_read_error = StorageCorruptError("checksum mismatch")
    payload = await call(client, "GET", "/cluster/snapshots/latest", 500)
    assert error_code(payload) == "snapshot_unreadable"
    assert payload["error"]["details"] == {"reason": "checksum mismatch"}


async def test_stopped_node_answers_503(client: Client, node: FakeNode) -> None:
    await seed(client)
    node.stopped = True
    for method, path in (("POST", "/cluster/snapshots"), ("GET", "/api/v1/events")):
        response = await client.request(method, path)
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert error_code(await response.json()) == "node_stopped"
    assert node.snapshot_files == []


# --- the event log -----------------------------------------------------------------------


async def test_empty_event_log(client: Client) -> None:
    assert await call(client, "GET", "/api/v1/events", 200) == {
        "first_index": 1,
        "last_index": 0,
        "events": [],
    }


async def test_events_show_commands_payloads_and_outcomes(client: Client, node: FakeNode) -> None:
    node.start_term(1)  # index 1: the leader's no-op
    await call(
        client, "POST", "/api/v1/printers", 201, json=PRINTER, headers={"Idempotency-Key": "k-1"}
    )
    await call(client, "POST", "/api/v1/filaments", 201, json={**FILAMENT, "type": "pla"})
    await call(client, "POST", "/api/v1/print_jobs", 201, json=JOB)
    await call(client, "PUT", "/api/v1/print_jobs/j1/status", 200, json={"status": "running"})
    await call(client, "POST", "/api/v1/printers", 409, json=PRINTER)
    await call(
        client, "POST", "/api/v1/printers", 201, json=PRINTER, headers={"Idempotency-Key": "k-1"}
    )

    page = await call(client, "GET", "/api/v1/events", 200)
    assert page["first_index"] == 1
    assert page["last_index"] == 7
    events = page["events"]
    assert [e["index"] for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert all(e["term"] == 1 for e in events)
    assert events[0] == {"index": 1, "term": 1, "type": "noop", "payload": {}, "outcome": None}
    assert events[1]["type"] == "create_printer"
    assert events[1]["payload"] == {**PRINTER, "idempotency": {"key": "k-1"}}
    assert events[1]["outcome"] == {"result": "accepted", "value": PRINTER, "replayed": False}
    assert events[2]["type"] == "create_filament"
    assert events[2]["payload"] == FILAMENT_STORED  # normalised: type upper-case, remaining set
    assert events[3]["type"] == "create_print_job"
    assert events[3]["payload"] == JOB
    assert events[3]["outcome"]["value"] == JOB_STORED
    assert events[4]["type"] == "update_job_status"
    assert events[4]["payload"] == {"job_id": "j1", "status": "Running"}
    assert events[4]["outcome"] == {
        "result": "accepted",
        "value": {**JOB, "status": "Running"},
        "replayed": False,
    }
    refused = events[5]["outcome"]
    assert refused["result"] == "refused"
    assert refused["code"] == "duplicate_id"
    assert set(refused) == {"result", "code", "message", "details", "replayed"}
    assert events[6]["outcome"] == {"result": "accepted", "value": PRINTER, "replayed": True}


async def test_an_undecodable_entry_is_shown_not_fatal(client: Client, node: FakeNode) -> None:
    await call(client, "POST", "/api/v1/printers", 201, json=PRINTER)
    node.log.append(FakeEntry(2, 1, False, b"\xc1 not msgpack", None))
    events = (await call(client, "GET", "/api/v1/events", 200))["events"]
    assert events[1] == {
        "index": 2,
        "term": 1,
        "type": "undecodable",
        "payload": None,
        "outcome": None,
    }


async def test_events_paginate(client: Client, node: FakeNode) -> None:
    for n in range(5):
        await call(client, "POST", "/api/v1/printers", 201, json={**PRINTER, "id": f"p{n}"})

    async def indexes(query: str) -> list[int]:
        page = await call(client, "GET", f"/api/v1/events?{query}", 200)
        assert page["last_index"] == 5
        return [e["index"] for e in page["events"]]

    assert await indexes("limit=2") == [1, 2]
    assert await indexes("after=2&limit=2") == [3, 4]
    assert await indexes("after=4&limit=2") == [5]
    assert await indexes("after=5") == []
    assert await indexes("after=500") == []
    assert await indexes("after=0&limit=1000") == [1, 2, 3, 4, 5]
    # Pages follow each other without gaps or repeats.
    cursor, seen = 0, []
    while batch := await indexes(f"after={cursor}&limit=2"):
        seen += batch
        cursor = batch[-1]
    assert seen == [1, 2, 3, 4, 5]


async def test_events_default_limit_is_100(client: Client, node: FakeNode) -> None:
    for n in range(105):
        await call(client, "POST", "/api/v1/printers", 201, json={**PRINTER, "id": f"p{n}"})
    page = await call(client, "GET", "/api/v1/events", 200)
    assert [e["index"] for e in page["events"]] == list(range(1, 101))


async def test_compaction_moves_first_index(client: Client, node: FakeNode) -> None:
    await seed(client)
    await call(client, "POST", "/cluster/snapshots", 201)
    await call(client, "POST", "/api/v1/print_jobs/j1/status?status=running", 200)
    gone = await call(client, "GET", "/api/v1/events?after=0", 410)
    assert gone["error"]["code"] == "compacted"
    assert gone["error"]["details"] == {"after": 0, "first_index": 4, "snapshot_index": 3}
    page = await call(client, "GET", "/api/v1/events?after=3", 200)
    assert page["first_index"] == 4
    assert page["last_index"] == 4
    assert [e["index"] for e in page["events"]] == [4]
    # Nothing left after a snapshot at the applied index: first_index is past the end.
    await call(client, "POST", "/cluster/snapshots", 201)
    page = await call(client, "GET", "/api/v1/events?after=4", 200)
    assert (page["first_index"], page["last_index"], page["events"]) == (5, 4, [])
    await call(client, "GET", "/api/v1/events?after=3", 410)


@pytest.mark.parametrize(
    "query",
    [
        "after=-1",
        "after=abc",
        "after=1.5",
        "after=",
        "after=+1",
        "after=%201",
        "after=1_0",
        "after=%D9%A3",  # an Arabic-Indic digit three, which int() would accept
        "after=99999999999999999999",
        "after=9223372036854775808",
        "limit=0",
        "limit=1001",
        "limit=-5",
        "limit=ten",
        "after=1&after=2",
        "page=2",
        "consistency=eventual",
    ],
)
async def test_bad_event_queries_are_400_and_cost_nothing(
    client: Client, node: FakeNode, query: str
) -> None:
    await seed(client)
    payload = await call(client, "GET", f"/api/v1/events?{query}", 400)
    assert error_code(payload) == "invalid_query"
    assert payload["error"]["details"]  # names the offending parameter
    assert node.barriers == 0
    assert len(node.proposals) == 3


async def test_largest_after_is_accepted(client: Client) -> None:
    page = await call(client, "GET", "/api/v1/events?after=9223372036854775807", 200)
    assert page["events"] == []


async def test_events_are_linearizable_by_default(client: Client, node: FakeNode) -> None:
    await seed(client)
    await call(client, "GET", "/api/v1/events", 200)
    await call(client, "GET", "/api/v1/events?consistency=linearizable&after=1", 200)
    assert node.barriers == 2
    page = await call(client, "GET", "/api/v1/events?consistency=local", 200)
    assert node.barriers == 2
    assert len(page["events"]) == 3

    node.fail_barriers(NoLeaderError("no leader"))
    response = await client.get("/api/v1/events")
    assert response.status == 503
    assert error_code(await response.json()) == "no_leader"
    node.fail_barriers(TimeoutError())
    assert (await client.get("/api/v1/events?consistency=local")).status == 200


async def test_event_responses_carry_node_headers(client: Client, node: FakeNode) -> None:
    await seed(client)
    response = await client.get("/api/v1/events?limit=1")
    assert response.status == 200
    assert response.headers["X-Raft3D-Node"] == "n1"
    assert response.headers["X-Raft3D-Applied-Index"] == "3"  # the page's last_index
    assert (await response.json())["last_index"] == 3


# --- metrics ------------------------------------------------------------------------------

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


def test_event_payloads_are_the_commands_fields() -> None:
    command = CreatePrinter(id="p9", company="Prusa", model="MK4")
    assert command_payload(decode_command(encode_command(command))) == {
        "id": "p9",
        "company": "Prusa",
        "model": "MK4",
    }


# --- the same endpoints over a real single-voter node --------------------------------------


@pytest.fixture
async def real_client(aiohttp_client: AiohttpClient, tmp_path: Path) -> Client:
    """The app wired as ``cli.build_app`` wires it, over a real node that elects itself."""
    _, client = await serve_single_voter(aiohttp_client, tmp_path, node_metrics=True)
    return client


async def test_operability_endpoints_over_a_real_node(real_client: Client) -> None:
    client = real_client
    await seed(client)
    page = await call(client, "GET", "/api/v1/events", 200)
    assert page["first_index"] == 1
    kinds = [e["type"] for e in page["events"]]
    assert kinds[-3:] == ["create_printer", "create_filament", "create_print_job"]
    assert set(kinds[:-3]) == {"noop"}  # one per term this node led
    assert page["events"][-1]["outcome"]["value"] == JOB_STORED
    last = page["last_index"]
    assert page["events"][-1]["index"] == last

    taken = await call(client, "POST", "/cluster/snapshots", 201)
    assert taken["index"] == last
    assert taken["created_at"].endswith("Z")
    assert await call(client, "GET", "/cluster/snapshots", 200) == {"snapshots": [taken]}
    again = await call(client, "POST", "/cluster/snapshots", 200)
    assert again["index"] == last

    latest = await call(client, "GET", "/cluster/snapshots/latest", 200)
    assert latest["index"] == last
    assert latest["created_at"] == taken["created_at"]
    assert latest["state"] == {
        "printers": [PRINTER],
        "filaments": [FILAMENT_STORED],
        "print_jobs": [JOB_STORED],
    }

    await call(client, "POST", "/api/v1/print_jobs/j1/status?status=running", 200)
    page = await call(client, "GET", "/api/v1/events?after=0&limit=10", 200)
    # The snapshot kept the trailing entries, each with its outcome.
    assert page["first_index"] == 1
    assert [e["index"] for e in page["events"]] == list(range(1, last + 2))
    assert all(e["outcome"] is not None for e in page["events"] if e["type"] != "noop")
    assert page["events"][-1]["payload"] == {"job_id": "j1", "status": "Running"}

    found = await scrape(client)
    assert found[("raft3d_snapshots_total", ())] == 1
    assert found[("raft3d_proposals_total", (("result", "committed"),))] == 4
    assert found[("raft3d_snapshot_index", ())] == last
    names = {name for name, _ in found}
    missing = set(EXPECTED_METRICS) - names - {"raft3d_peer_reachable"}  # no peers here
    assert not missing, sorted(missing)
