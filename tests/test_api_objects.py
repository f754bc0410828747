"""SPEC §8 reads: one object by id, the job list's filters and a roll's available weight."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from raft3d.api.objects import roll_views
from raft3d.domain.commands import (
    Command,
    CreateFilament,
    CreatePrinter,
    CreatePrintJob,
    UpdateJobStatus,
    encode_command,
)
from raft3d.domain.model import FilamentType, JobStatus
from raft3d.domain.state import FarmStateMachine
from tests.support.fakes import FakeNode, make_app

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    return await aiohttp_client(make_app(node))


async def call(client: Client, method: str, path: str, status: int, body: object = None) -> Any:
    response = await client.request(method, path, json=body)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def farm(client: Client) -> None:
    """Two printers, one 1000 g roll and one 500 g roll; jobs in every status."""
    for pid in ("p1", "p2"):
        await call(
            client, "POST", "/api/v1/printers", 201, {"id": pid, "company": "C", "model": "M"}
        )
    for fid, grams in (("f1", 1000), ("f2", 500)):
        roll = {"id": fid, "type": "pla", "color": "red", "total_weight_in_grams": grams}
        await call(client, "POST", "/api/v1/filaments", 201, roll)
    jobs = [
        ("q1", "p1", "f1", 100),
        ("r1", "p1", "f1", 200),
        ("d1", "p2", "f1", 50),
        ("c1", "p2", "f2", 70),
        ("q2", "p2", "f2", 30),
    ]
    for jid, pid, fid, grams in jobs:
        job = {
            "id": jid,
            "printer_id": pid,
            "filament_id": fid,
            "filepath": "a.gcode",
            "print_weight_in_grams": grams,
        }
        await call(client, "POST", "/api/v1/print_jobs", 201, job)
    for jid, statuses in (("r1", ["running"]), ("d1", ["running", "done"]), ("c1", ["cancelled"])):
        for status in statuses:
            await call(client, "POST", f"/api/v1/print_jobs/{jid}/status?status={status}", 200)


async def test_each_object_by_id(client: Client, node: FakeNode) -> None:
    await farm(client)
    assert await call(client, "GET", "/api/v1/printers/p2", 200) == {
        "id": "p2",
        "company": "C",
        "model": "M",
    }
    job = await call(client, "GET", "/api/v1/print_jobs/d1", 200)
    assert (job["status"], job["printer_id"], job["print_weight_in_grams"]) == ("Done", "p2", 50)
    roll = await call(client, "GET", "/api/v1/filaments/f1", 200)
    # Done used 50 g; Queued 100 g and Running 200 g are reserved.
    assert roll["remaining_weight_in_grams"] == 950
    assert roll["available_weight_in_grams"] == 650
    barriers = node.barriers
    await call(client, "GET", "/api/v1/printers/p1?consistency=local", 200)
    assert node.barriers == barriers
    await call(client, "GET", "/api/v1/printers/p1", 200)
    assert node.barriers == barriers + 1


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/printers/nope", "printer_not_found"),
        ("/api/v1/filaments/nope", "filament_not_found"),
        ("/api/v1/print_jobs/nope", "job_not_found"),
        ("/api/v1/printers/" + "x" * 129, "printer_not_found"),
        ("/api/v1/print_jobs/%ED%A0%80", "job_not_found"),
    ],
)
async def test_unknown_id_is_404_json(client: Client, path: str, code: str) -> None:
    payload = await call(client, "GET", path, 404)
    assert payload["error"]["code"] == code


async def test_by_id_read_checks_its_query(client: Client) -> None:
    await farm(client)
    payload = await call(client, "GET", "/api/v1/printers/p1?consistency=eventual", 400)
    assert payload["error"]["code"] == "invalid_query"
    payload = await call(client, "GET", "/api/v1/filaments/f1?status=queued", 400)
    assert payload["error"]["code"] == "invalid_query"


async def test_filament_list_shows_available_weight(client: Client) -> None:
    await farm(client)
    rolls = await call(client, "GET", "/api/v1/filaments", 200)
    assert [(r["id"], r["available_weight_in_grams"]) for r in rolls] == [("f1", 650), ("f2", 470)]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("printer_id=p1", ["q1", "r1"]),
        ("filament_id=f2", ["c1", "q2"]),
        ("printer_id=p2&filament_id=f1", ["d1"]),
        ("printer_id=p2&status=queued", ["q2"]),
        ("status=Running&printer_id=p1&filament_id=f1", ["r1"]),
        ("printer_id=p1&filament_id=f2", []),
        ("printer_id=unknown", []),
        ("status=done&consistency=local", ["d1"]),
    ],
)
async def test_job_filters_combine(client: Client, query: str, ids: list[str]) -> None:
    await farm(client)
    jobs = await call(client, "GET", f"/api/v1/print_jobs?{query}", 200)
    assert [job["id"] for job in jobs] == ids


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("status=paused", "status"),
        ("printer_id=", "printer_id"),
        ("filament_id=" + "f" * 129, "filament_id"),
        ("printer_id=p1&colour=red", "colour"),
    ],
)
async def test_bad_filter_is_400(client: Client, node: FakeNode, query: str, param: str) -> None:
    payload = await call(client, "GET", f"/api/v1/print_jobs?{query}", 400)
    assert payload["error"]["code"] == "invalid_query"
    assert param in payload["error"]["details"]
    assert node.barriers == 0  # refused before it asked the cluster anything


def test_available_grams_is_remaining_minus_active_reservations() -> None:
    state = FarmStateMachine()
    commands: list[Command] = [
        CreatePrinter(id="p", company="C", model="M", idempotency=None),
        CreateFilament(
            id="f",
            type=FilamentType.PLA,
            color="red",
            total_weight_in_grams=100,
            remaining_weight_in_grams=80,
            idempotency=None,
        ),
        CreatePrintJob(
            id="a",
            printer_id="p",
            filament_id="f",
            filepath="x",
            print_weight_in_grams=30,
            idempotency=None,
        ),
        CreatePrintJob(
            id="b",
            printer_id="p",
            filament_id="f",
            filepath="x",
            print_weight_in_grams=20,
            idempotency=None,
        ),
    ]
    for command in commands:
        state.apply(state.last_applied_index + 1, encode_command(command))

    def move(job_id: str, status: JobStatus) -> None:
        command = UpdateJobStatus(job_id=job_id, status=status, idempotency=None)
        state.apply(state.last_applied_index + 1, encode_command(command))

    def available() -> int:
        roll = state.filament("f")
        assert roll is not None
        return state.available_grams(roll)

    assert available() == 30
    move("a", JobStatus.RUNNING)
    assert available() == 30  # Running still reserves
    move("a", JobStatus.DONE)
    assert available() == 30  # used: remaining 50, reserved 20
    move("b", JobStatus.CANCELLED)
    assert available() == 50


async def test_filters_combine_with_pages(client: Client) -> None:
    await farm(client)
    response = await client.get("/api/v1/print_jobs?printer_id=p2&limit=1")
    assert [job["id"] for job in await response.json()] == ["d1"]
    assert "after=d1" in response.headers["Link"]
    response = await client.get("/api/v1/print_jobs?printer_id=p2&limit=1&after=d1")
    assert [job["id"] for job in await response.json()] == ["c1"]
    response = await client.get("/api/v1/print_jobs?printer_id=p2&limit=5&after=c1")
    assert [job["id"] for job in await response.json()] == ["q2"]
    assert "Link" not in response.headers


async def test_roll_pages_show_available_weight(client: Client) -> None:
    await farm(client)
    response = await client.get("/api/v1/filaments?limit=1")
    assert [(r["id"], r["available_weight_in_grams"]) for r in await response.json()] == [
        ("f1", 650)
    ]
    response = await client.get("/api/v1/filaments?limit=1&after=f1")
    assert [(r["id"], r["available_weight_in_grams"]) for r in await response.json()] == [
        ("f2", 470)
    ]


def test_roll_views_keep_the_reservations_they_were_made_with() -> None:
    state = FarmStateMachine()
    for command in (
        CreatePrinter(id="p", company="C", model="M", idempotency=None),
        CreateFilament(
            id="f",
            type=FilamentType.PLA,
            color="red",
            total_weight_in_grams=100,
            remaining_weight_in_grams=100,
            idempotency=None,
        ),
    ):
        state.apply(state.last_applied_index + 1, encode_command(command))
    views = roll_views(state)
    job = CreatePrintJob(
        id="a",
        printer_id="p",
        filament_id="f",
        filepath="x",
        print_weight_in_grams=30,
        idempotency=None,
    )
    state.apply(state.last_applied_index + 1, encode_command(job))
    # Taken before the job: a list encoded across loop slices shows one state throughout.
    assert [v.to_dict()["available_weight_in_grams"] for v in views[0:1]] == [100]
    assert views[0].available_weight_in_grams == 100
    assert roll_views(state)[0].available_weight_in_grams == 70
    assert len(views) == 1
