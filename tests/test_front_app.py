"""Through a front, the API answers as it does in-process: the same script of requests sent
straight to a node's app and through a front (each over its own fake node) gets the same
statuses, bodies and headers, and the node's /metrics counts what the front answered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from raft3d.config import LimitSettings
from raft3d.node.errors import EntryTooLargeError, OutcomeUnknownError
from tests.support.fakes import FakeNode
from tests.support.fronts import Answer, Endpoint, node_with_front
from tests.support.waiting import eventually

PRINTER = {"id": "p1", "company": "Creality", "model": "Ender 3"}
ROLL = {"id": "f1", "type": "PLA", "color": "red", "total_weight_in_grams": 1000}
JOB = {
    "id": "j1",
    "printer_id": "p1",
    "filament_id": "f1",
    "filepath": "a.gcode",
    "print_weight_in_grams": 100,
}
COMPARED_HEADERS = (
    "Content-Type",
    "X-Raft3D-Node",
    "X-Raft3D-Applied-Index",
    "Retry-After",
    "Idempotent-Replayed",
    "Access-Control-Allow-Origin",
    "Allow",
)


def _seen(answer: Answer) -> tuple[int, Any, dict[str, str | None]]:
    return answer.status, answer.body, {h: answer.headers.get(h) for h in COMPARED_HEADERS}


async def _script(to: Endpoint, node: FakeNode) -> list[tuple[int, Any, dict[str, str | None]]]:
    key = {"Idempotency-Key": "k1"}
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/printers", {"json": PRINTER}),
        ("POST", "/api/v1/printers", {"json": PRINTER}),  # duplicate id: 409
        ("POST", "/api/v1/printers", {"json": {**PRINTER, "id": "p2"}, "headers": key}),
        ("POST", "/api/v1/printers", {"json": {**PRINTER, "id": "p2"}, "headers": key}),  # replay
        ("POST", "/api/v1/printers", {"json": {**PRINTER, "id": "p3"}, "headers": key}),  # reuse
        ("POST", "/api/v1/printers", {"json": {**PRINTER, "company": 3}}),  # 400
        ("POST", "/api/v1/printers", {"data": b"{not json", "headers": _json}),  # 400
        ("POST", "/api/v1/printers", {"data": b"x=1"}),  # not JSON: 415
        ("POST", "/api/v1/printers?x=1", {"json": PRINTER}),  # unknown query parameter
        ("POST", "/api/v1/printers", {"data": b"{" + b" " * 70_000 + b"}", "headers": _json}),
        ("POST", "/api/v1/filaments", {"json": ROLL}),
        ("POST", "/api/v1/print_jobs", {"json": JOB}),
        ("POST", "/api/v1/print_jobs", {"json": {**JOB, "id": "j2", "printer_id": "nope"}}),
        ("POST", "/api/v1/print_jobs/j1/status?status=running", {}),
        ("PUT", "/api/v1/print_jobs/j1/status", {"json": {"status": "done"}}),
        ("POST", "/api/v1/print_jobs/j1/status", {"json": {"status": "running"}}),  # 409
        ("POST", "/api/v1/print_jobs/nope/status?status=done", {}),  # 404
        ("GET", "/api/v1/printers/p1", {}),  # relayed from here on
        ("GET", "/api/v1/printers", {}),
        ("GET", "/api/v1/print_jobs?status=done", {}),
        ("GET", "/api/v1/printers/nope", {}),
        ("GET", "/cluster/members", {}),
        ("DELETE", "/api/v1/printers", {}),  # 405
        ("GET", "/no/such/route", {}),  # 404
        ("OPTIONS", "/api/v1/printers", {"headers": _preflight}),
    ]
    answers = [_seen(await to.send(method, path, **kwargs)) for method, path, kwargs in steps]
    node.fail_proposals(OutcomeUnknownError(9, 1), EntryTooLargeError(70_000, 65_536))
    for _ in range(2):
        answers.append(_seen(await to.send("POST", "/api/v1/printers", json=PRINTER)))
    node.fail_proposals(TimeoutError())
    answers.append(_seen(await to.send("POST", "/api/v1/printers", json={**PRINTER, "id": "t"})))
    return answers


_json = {"Content-Type": "application/json"}
_preflight = {"Origin": "http://127.0.0.1:1", "Access-Control-Request-Method": "POST"}


async def test_the_same_requests_get_the_same_answers(tmp_path: Path) -> None:
    results = []
    for name in ("direct", "front"):
        node = FakeNode("n1")
        (tmp_path / name).mkdir()
        async with node_with_front(node, tmp_path / name) as (direct, front, _app):
            results.append(await _script(direct if name == "direct" else front, node))
    direct_answers, front_answers = results
    assert [a[0] for a in direct_answers][:6] == [201, 409, 201, 201, 422, 400]  # the script ran
    for step, (a, b) in enumerate(zip(direct_answers, front_answers, strict=True)):
        assert a == b, f"step {step}"


async def test_quota_is_checked_by_the_node_and_rendered_alike(tmp_path: Path) -> None:
    limits = LimitSettings(max_printers=1)
    seen = []
    for name in ("direct", "front"):
        node = FakeNode("n1")
        (tmp_path / name).mkdir()
        async with node_with_front(node, tmp_path / name, limits=limits) as endpoints:
            to = endpoints[0] if name == "direct" else endpoints[1]
            first = await to.send("POST", "/api/v1/printers", json=PRINTER)
            second = await to.send("POST", "/api/v1/printers", json={**PRINTER, "id": "p2"})
            seen.append((_seen(first), _seen(second)))
            assert [p.id for p in node.state.printers()] == ["p1"]
    assert seen[0] == seen[1]
    assert seen[1][1][0] == 409
    assert seen[1][1][1]["error"]["code"] == "quota_exceeded"


async def test_a_write_a_follower_cannot_propose_is_handed_back_to_the_node(
    tmp_path: Path,
) -> None:
    """The node's app then runs it as in-process (here: no leader answers within the
    timeout), so the answer is the same and the proposal was tried there too."""
    seen = []
    for name in ("direct", "front"):
        node = FakeNode("n1", leader_id="n2")  # a follower whose leader has no known address
        (tmp_path / name).mkdir()
        async with node_with_front(node, tmp_path / name, request_timeout_s=0.2) as endpoints:
            to = endpoints[0] if name == "direct" else endpoints[1]
            answer = await to.send("POST", "/api/v1/printers", json=PRINTER)
            seen.append(_seen(answer))
            assert node.proposals  # tried on the node, which is not the leader
            assert node.state.printers() == []
    assert seen[0] == seen[1]
    assert seen[1][0] == 503
    assert seen[1][1]["error"]["code"] == "no_leader"


async def test_the_nodes_metrics_count_what_the_front_answered(tmp_path: Path) -> None:
    node = FakeNode("n1")
    async with node_with_front(node, tmp_path) as (direct, front, _app):
        for i in range(3):
            answer = await front.send("POST", "/api/v1/printers", json={**PRINTER, "id": f"p{i}"})
            assert answer.status == 201
        assert (await front.send("POST", "/api/v1/printers", json={"id": 1})).status == 400
        await direct.send("GET", "/api/v1/printers")  # counted by the node's app itself

        async def counted() -> bool:
            text = (await direct.send("GET", "/metrics")).body.decode()
            return (
                'raft3d_requests_total{method="POST",route="/api/v1/printers",status="201"} 3.0'
                in text
                and 'raft3d_requests_total{method="POST",route="/api/v1/printers",status="400"} 1.0'
                in text
                and 'raft3d_front_requests_total{front="0",how="served"} 4.0' in text
                and 'raft3d_requests_total{method="GET",route="/api/v1/printers",status="200"} 1.0'
                in text
            )

        await eventually(counted, 5, "the front's requests on the node's /metrics")


@pytest.mark.parametrize(
    "header", [{"Origin": "http://127.0.0.1:1"}, {"X-Raft3D-Forwarded-By": "n2"}]
)
async def test_cross_origin_and_forwarded_writes_are_relayed_to_the_node(
    tmp_path: Path, header: dict[str, str]
) -> None:
    node = FakeNode("n1")
    async with node_with_front(node, tmp_path) as (direct, front, _app):
        await front.send("POST", "/api/v1/printers", json=PRINTER, headers=header)

        async def metrics() -> str:
            text: str = (await direct.send("GET", "/metrics")).body.decode()
            return text

        relayed = 'raft3d_front_requests_total{front="0",how="relayed"} 1.0'
        await eventually(lambda: _contains(metrics(), relayed), 5, "the relayed request counted")
        # the node answered it, not the front
        assert 'raft3d_front_requests_total{front="0",how="served"}' not in await metrics()


async def _contains(text: Awaitable[str], part: str) -> bool:
    return part in await text


async def test_a_relayed_body_arrives_whole_chunked_or_after_100_continue(tmp_path: Path) -> None:
    node = FakeNode("n1")
    async with node_with_front(node, tmp_path) as (_direct, front, _app):
        origin = {"Origin": "http://127.0.0.1:1"}  # relayed, body and all

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"id": "p1", "company": "C", '
            yield b'"model": "M"}'

        chunked = await front.send(
            "POST", "/api/v1/printers", data=chunks(), headers={**origin, **_json}
        )
        assert (chunked.status, chunked.body) == (201, {"id": "p1", "company": "C", "model": "M"})
        expecting = await front.send(
            "POST",
            "/api/v1/printers",
            json={**PRINTER, "id": "p2"},
            headers=origin,
            expect100=True,
        )
        assert expecting.status == 201
        assert [p.id for p in node.state.printers()] == ["p1", "p2"]
