"""Operability endpoints over a fake node: taking, listing and reading snapshots (the event
log and the metrics have files of their own), and all of them over a real node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from raft3d.storage.errors import StorageCorruptError
from tests.support.fakes import (
    FakeNode,
    serve_single_voter,
)
from tests.support.operability import (
    EXPECTED_METRICS,
    FILAMENT_STORED,
    JOB,
    JOB_STORED,
    PRINTER,
    Client,
    call,
    error_code,
    scrape,
    seed,
)

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
