"""Lists: pagination (``limit``, ``after``, ``Link``), quotas, and encoding that yields the loop.

Issue 8: one ``GET /api/v1/print_jobs`` of a 100k-job farm held the event loop for seconds
(the whole array encoded in one call). The loop test counts how often a concurrent ticker task
ran while the list was being encoded: zero when it is encoded in one go, many when sliced.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from raft3d.config import LimitSettings
from raft3d.domain.farm import Farm
from raft3d.domain.idempotency import IdempotencyTable
from raft3d.domain.model import Filament, FilamentType, JobStatus, Printer, PrintJob
from raft3d.domain.persistent import IndexedValues
from raft3d.domain.snapshot import StateCapture
from raft3d.domain.state import FarmStateMachine
from tests.support.fakes import FakeNode, make_app

Client = TestClient[web.Request, web.Application]
J = "/api/v1/print_jobs"


def farm_state(jobs: int, printers: int = 3) -> FarmStateMachine:
    """A state machine holding ``jobs`` print jobs (every third one Done), built directly."""
    printer_list = [Printer(f"p{i}", "Creality", "Ender 3") for i in range(printers)]
    roll = Filament("f1", FilamentType.PLA, "red", 10**12, 10**12)
    job_list = [
        PrintJob(
            f"j{i}",
            printer_list[i % printers].id,
            "f1",
            f"prints/{i}.gcode",
            1,
            JobStatus.DONE if i % 3 == 0 else JobStatus.QUEUED,
        )
        for i in range(jobs)
    ]
    farm = Farm.from_objects(printer_list, [roll], job_list)
    state = FarmStateMachine()
    state.restore(
        StateCapture(0, farm.view(), IdempotencyTable(10).view(), IndexedValues().view()).encode()
    )
    return state


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(make_app(FakeNode("n1", farm_state(25))))


async def get(client: Client, url: str) -> tuple[list[dict[str, Any]], str | None]:
    response = await client.get(url)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert isinstance(body, list)
    return body, response.headers.get("Link")


def next_url(link: str | None) -> str | None:
    if link is None:
        return None
    target, rel = link.split(";")
    assert rel.strip() == 'rel="next"'
    return target.strip()[1:-1]


async def test_without_limit_the_whole_array_in_creation_order(client: Client) -> None:
    jobs, link = await get(client, J)
    assert [job["id"] for job in jobs] == [f"j{i}" for i in range(25)]
    assert link is None


async def test_pages_follow_the_link_through_every_item_once(client: Client) -> None:
    seen: list[str] = []
    url: str | None = J + "?limit=10"
    pages = 0
    while url is not None:
        jobs, link = await get(client, url)
        assert len(jobs) <= 10
        seen += [job["id"] for job in jobs]
        url = next_url(link)
        pages += 1
    assert pages == 3
    assert seen == [f"j{i}" for i in range(25)]


async def test_link_keeps_the_filter_and_after_may_name_a_job_that_no_longer_matches(
    client: Client,
) -> None:
    queued, link = await get(client, J + "?status=queued&limit=4")
    assert [job["id"] for job in queued] == ["j1", "j2", "j4", "j5"]
    following = next_url(link)
    assert following is not None and "status=queued" in following and "after=j5" in following
    # j6 is Done: a cursor on it still means "after j6 in creation order".
    after_done, _ = await get(client, J + "?status=queued&after=j6&limit=2")
    assert [job["id"] for job in after_done] == ["j7", "j8"]


async def test_last_page_exactly_full_has_no_link(client: Client) -> None:
    jobs, link = await get(client, J + "?after=j14&limit=10")
    assert [job["id"] for job in jobs] == [f"j{i}" for i in range(15, 25)]
    assert link is None
    empty, link = await get(client, J + "?after=j24")
    assert empty == [] and link is None


async def test_printers_and_filaments_paginate_too(client: Client) -> None:
    printers, link = await get(client, "/api/v1/printers?limit=2")
    assert [p["id"] for p in printers] == ["p0", "p1"]
    assert next_url(link) == "/api/v1/printers?limit=2&after=p1"
    filaments, link = await get(client, "/api/v1/filaments?limit=1&consistency=local")
    assert [f["id"] for f in filaments] == ["f1"] and link is None


class Ticker:
    """Counts how often the event loop ran it: once per loop iteration while it is running."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_100k_job_list_lets_the_loop_run_while_it_is_encoded(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await aiohttp_client(make_app(FakeNode("n1", farm_state(100_000))))
    ticker = Ticker()
    at_encode: list[int] = []
    original = PrintJob.to_dict

    def recording(job: PrintJob) -> dict[str, Any]:
        at_encode.append(ticker.ticks)
        return original(job)

    monkeypatch.setattr(PrintJob, "to_dict", recording)
    with ticker:
        response = await client.get(J + "?consistency=local")
        raw = await response.read()
    assert response.status == 200
    assert len(json.loads(raw)) == 100_000
    assert len(at_encode) == 100_000
    # Between the first and the last job encoded, other tasks got the loop many times (an
    # encode in one call lets them run zero times).
    assert at_encode[-1] - at_encode[0] >= 5


async def test_a_filtered_page_of_a_big_farm_also_yields_while_it_scans(
    aiohttp_client: AiohttpClient,
) -> None:
    # The cursor is near the end: finding it means scanning ~100k jobs, in slices.
    client = await aiohttp_client(make_app(FakeNode("n1", farm_state(100_000))))
    with Ticker() as ticker:
        before = ticker.ticks
        jobs, _ = await get(client, J + "?consistency=local&status=queued&after=j99990&limit=3")
        during = ticker.ticks - before
    assert [job["id"] for job in jobs] == ["j99991", "j99992", "j99994"]
    assert during >= 1


async def test_a_create_over_its_quota_is_refused_and_changes_nothing(
    aiohttp_client: AiohttpClient,
) -> None:
    node = FakeNode("n1", farm_state(2, printers=2))
    limits = LimitSettings(max_printers=2, max_filaments=1, max_print_jobs=3)
    client = await aiohttp_client(make_app(node, limits=limits))
    response = await client.post("/api/v1/printers", json={"company": "A", "model": "B"})
    assert response.status == 409
    error = (await response.json())["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {"kind": "printers", "limit": 2, "count": 2}
    response = await client.post(
        "/api/v1/filaments", json={"type": "PLA", "color": "red", "total_weight_in_grams": 1}
    )
    assert (await response.json())["error"]["code"] == "quota_exceeded"
    assert node.proposals == []
    job = {"printer_id": "p0", "filament_id": "f1", "filepath": "a.gcode"}
    response = await client.post(J, json={**job, "print_weight_in_grams": 1})
    assert response.status == 201  # the third job is within its quota
    response = await client.post(J, json={**job, "print_weight_in_grams": 1})
    assert response.status == 409
    assert node.state.counts().print_jobs == 3
