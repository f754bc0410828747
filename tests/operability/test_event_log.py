"""The event log endpoint over a fake node: commands, payloads and outcomes, pagination,
compaction, bad queries and linearizable reads."""

from __future__ import annotations

import pytest

from raft3d.api.events import command_payload
from raft3d.domain.commands import CreatePrinter, decode_command, encode_command
from raft3d.node.errors import NoLeaderError
from tests.support.fakes import (
    FakeEntry,
    FakeNode,
)
from tests.support.operability import (
    FILAMENT,
    FILAMENT_STORED,
    JOB,
    JOB_STORED,
    PRINTER,
    Client,
    call,
    error_code,
    seed,
)

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


def test_event_payloads_are_the_commands_fields() -> None:
    command = CreatePrinter(id="p9", company="Prusa", model="MK4")
    assert command_payload(decode_command(encode_command(command))) == {
        "id": "p9",
        "company": "Prusa",
        "model": "MK4",
    }
