"""Bad input is refused with the right 4xx, in our JSON error shape, and changes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from pytest_aiohttp import AiohttpClient

from raft3d.api.errors import UnsupportedMediaType
from raft3d.api.inputs import PLAIN_JSON_TYPES, _check_content_type, _is_json_media_type
from tests.support.fakes import FakeNode, make_app

Client = TestClient[web.Request, web.Application]

MAX_BODY = 16 * 1024
PRINTER = {"company": "Creality", "model": "Ender 3"}
FILAMENT = {"type": "PLA", "color": "red", "total_weight_in_grams": 1000}
JOB = {"printer_id": "p1", "filament_id": "f1", "filepath": "a.gcode", "print_weight_in_grams": 1}


@dataclass(frozen=True)
class Bad:
    """One refused request: what is sent, the status and error code expected back."""

    method: str
    path: str
    body: bytes | None
    status: int
    code: str
    headers: dict[str, str] = field(default_factory=dict)
    field: str | None = None  # a key that must appear in the error's details


def bad_json(path: str, body: object, field: str | None = None, *, method: str = "POST") -> Bad:
    return Bad(method, path, json.dumps(body).encode(), 400, "invalid_body", field=field)


def raw(path: str, body: bytes, status: int = 400, code: str = "invalid_json") -> Bad:
    return Bad("POST", path, body, status, code)


P, F, J = "/api/v1/printers", "/api/v1/filaments", "/api/v1/print_jobs"
S = "/api/v1/print_jobs/j1/status"

CASES: dict[str, Bad] = {
    # Not JSON, or not a JSON object.
    "truncated json": raw(P, b'{"company": "A", "model": '),
    "array body": raw(P, b"[]"),
    "string body": raw(P, b'"printer"'),
    "null body": raw(P, b"null"),
    "empty body": raw(P, b""),
    "not utf-8": raw(P, b'{"company": "\xff\xfe", "model": "m"}'),
    "NaN": raw(P, b'{"id": NaN, "company": "a", "model": "b"}'),
    "duplicate keys": raw(P, b'{"company": "a", "company": "b", "model": "c"}'),
    "deep nesting": raw(P, b"[" * 5_000 + b"]" * 5_000),
    "5000-digit integer": raw(F, b'{"total_weight_in_grams": ' + b"9" * 5000 + b"}"),
    "empty status body": raw(S, b"", 400, "invalid_body"),
    # Wrong types.
    "company not a string": bad_json(P, {**PRINTER, "company": 1}, "company"),
    "company null": bad_json(P, {**PRINTER, "company": None}, "company"),
    "id bool": bad_json(P, {**PRINTER, "id": True}, "id"),
    "id float": bad_json(P, {**PRINTER, "id": 1.5}, "id"),
    "id object": bad_json(P, {**PRINTER, "id": {"a": 1}}, "id"),
    "id null": bad_json(P, {**PRINTER, "id": None}, "id"),
    "weight as string": bad_json(
        F, {**FILAMENT, "total_weight_in_grams": "1000"}, "total_weight_in_grams"
    ),
    "weight as float": bad_json(
        F, {**FILAMENT, "total_weight_in_grams": 1000.5}, "total_weight_in_grams"
    ),
    "weight as integral float": bad_json(
        F, {**FILAMENT, "total_weight_in_grams": 1000.0}, "total_weight_in_grams"
    ),
    "weight as bool": bad_json(
        F, {**FILAMENT, "total_weight_in_grams": True}, "total_weight_in_grams"
    ),
    "type not a string": bad_json(F, {**FILAMENT, "type": 3}, "type"),
    "job weight as string": bad_json(
        J, {**JOB, "print_weight_in_grams": "1"}, "print_weight_in_grams"
    ),
    "status not a string": bad_json(S, {"status": 1}, "status"),
    # Unknown or missing fields.
    "unknown field": bad_json(P, {**PRINTER, "colour": "red"}, "colour"),
    "missing field": bad_json(P, {"company": "a"}, "model"),
    "unknown status body field": bad_json(S, {"status": "running", "why": "x"}, "why"),
    "missing status": bad_json(S, {}, "status"),
    # Out of range.
    "empty id": bad_json(P, {**PRINTER, "id": ""}, "id"),
    "overlong id": bad_json(P, {**PRINTER, "id": "x" * 129}, "id"),
    "overlong integer id": bad_json(P, {**PRINTER, "id": 10**129}, "id"),
    "empty company": bad_json(P, {**PRINTER, "company": ""}, "company"),
    "overlong model": bad_json(P, {**PRINTER, "model": "m" * 257}, "model"),
    "lone surrogate": raw(P, b'{"company": "\\ud800", "model": "m"}', 400, "invalid_body"),
    "zero weight": bad_json(F, {**FILAMENT, "total_weight_in_grams": 0}, "total_weight_in_grams"),
    "negative weight": bad_json(
        F, {**FILAMENT, "total_weight_in_grams": -5}, "total_weight_in_grams"
    ),
    "huge weight": bad_json(
        F, {**FILAMENT, "total_weight_in_grams": 10**30}, "total_weight_in_grams"
    ),
    "weight over bound": bad_json(
        F, {**FILAMENT, "total_weight_in_grams": 10_000_001}, "total_weight_in_grams"
    ),
    "remaining negative": bad_json(
        F, {**FILAMENT, "remaining_weight_in_grams": -1}, "remaining_weight_in_grams"
    ),
    "remaining over total": bad_json(
        F, {**FILAMENT, "remaining_weight_in_grams": 1001}, "remaining_weight_in_grams"
    ),
    "unknown filament type": bad_json(F, {**FILAMENT, "type": "nylon"}, "type"),
    "empty filepath": bad_json(J, {**JOB, "filepath": ""}, "filepath"),
    "overlong filepath": bad_json(J, {**JOB, "filepath": "p" * 1025}, "filepath"),
    "zero job weight": bad_json(J, {**JOB, "print_weight_in_grams": 0}, "print_weight_in_grams"),
    "job created running": bad_json(J, {**JOB, "status": "Running"}, "status"),
    "job status unknown": bad_json(J, {**JOB, "status": "paused"}, "status"),
    "unknown target status": bad_json(S, {"status": "paused"}, "status"),
    "status put unknown": bad_json(S, {"status": "paused"}, "status", method="PUT"),
    # Query strings.
    "bad query status": Bad(
        "POST", S + "?status=paused", None, 400, "invalid_query", field="status"
    ),
    "query and body differ": Bad(
        "POST", S + "?status=running", b'{"status": "cancelled"}', 400, "conflicting_status"
    ),
    "repeated query status": Bad(
        "POST", S + "?status=running&status=running", None, 400, "invalid_query", field="status"
    ),
    "query on create": Bad(
        "POST",
        P + "?dry_run=1",
        json.dumps(PRINTER).encode(),
        400,
        "invalid_query",
        field="dry_run",
    ),
    "bad consistency": Bad(
        "GET", P + "?consistency=strong", None, 400, "invalid_query", field="consistency"
    ),
    "bad status filter": Bad(
        "GET", J + "?status=paused", None, 400, "invalid_query", field="status"
    ),
    "unknown read param": Bad("GET", F + "?page=5", None, 400, "invalid_query", field="page"),
    "zero limit": Bad("GET", F + "?limit=0", None, 400, "invalid_query", field="limit"),
    "huge limit": Bad("GET", P + "?limit=10001", None, 400, "invalid_query", field="limit"),
    "signed limit": Bad("GET", J + "?limit=+5", None, 400, "invalid_query", field="limit"),
    "unknown cursor": Bad("GET", J + "?after=nobody", None, 400, "invalid_query", field="after"),
    "empty cursor": Bad("GET", P + "?after=", None, 400, "invalid_query", field="after"),
    # Headers, media types and sizes.
    "empty idempotency key": Bad(
        "POST", P, json.dumps(PRINTER).encode(), 400, "invalid_header", {"Idempotency-Key": ""}
    ),
    "overlong idempotency key": Bad(
        "POST",
        P,
        json.dumps(PRINTER).encode(),
        400,
        "invalid_header",
        {"Idempotency-Key": "k" * 257},
    ),
    "text/plain body": Bad(
        "POST",
        P,
        json.dumps(PRINTER).encode(),
        415,
        "unsupported_media_type",
        {"Content-Type": "text/plain"},
    ),
    "form body": Bad(
        "POST",
        P,
        b"company=a&model=b",
        415,
        "unsupported_media_type",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "latin-1 json": Bad(
        "POST",
        P,
        json.dumps(PRINTER).encode(),
        415,
        "unsupported_media_type",
        {"Content-Type": "application/json; charset=latin-1"},
    ),
    "oversize body": Bad(
        "POST", P, json.dumps({**PRINTER, "model": "m" * MAX_BODY}).encode(), 413, "body_too_large"
    ),
    # Routes and methods.
    "unknown route": Bad("GET", "/api/v1/spools", None, 404, "not_found"),
    "unknown api version": Bad("POST", "/api/v2/printers", b"{}", 404, "not_found"),
    "overlong job id in url": Bad(
        "POST", f"/api/v1/print_jobs/{'j' * 129}/status?status=done", None, 404, "job_not_found"
    ),
    "delete printers": Bad("DELETE", P, None, 405, "method_not_allowed"),
    "get job status": Bad("GET", S, None, 405, "method_not_allowed"),
    "patch status": Bad("PATCH", S, b'{"status": "running"}', 405, "method_not_allowed"),
}


@pytest.fixture
async def seeded(aiohttp_client: AiohttpClient) -> tuple[Client, FakeNode]:
    node = FakeNode("n1")
    client = await aiohttp_client(make_app(node, max_body_bytes=MAX_BODY))
    for path, body in (
        (P, {**PRINTER, "id": "p1"}),
        (F, {**FILAMENT, "id": "f1"}),
        (J, {**JOB, "id": "j1"}),
    ):
        response = await client.post(path, json=body)
        assert response.status == 201
    node.proposals.clear()
    return client, node


async def lists(client: Client) -> list[object]:
    found = []
    for path in (P, F, J):
        response = await client.get(path + "?consistency=local")
        assert response.status == 200
        found.append(await response.json())
    return found


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_bad_input_is_refused_and_changes_nothing(
    seeded: tuple[Client, FakeNode], case: Bad
) -> None:
    client, node = seeded
    digest, before = node.state.digest(), await lists(client)
    headers = {"Content-Type": "application/json", **case.headers}
    response = await client.request(case.method, case.path, data=case.body, headers=headers)

    assert response.status == case.status
    assert response.content_type == "application/json"
    payload = await response.json()
    assert set(payload) == {"error"}
    error = payload["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == case.code
    assert isinstance(error["message"], str) and error["message"]
    if case.field is not None:
        assert case.field in error["details"], error
    if case.status == 405:
        assert response.headers["Allow"]
    assert response.headers["X-Raft3D-Node"] == "n1"

    assert node.proposals == []  # refused before anything was proposed
    assert node.state.digest() == digest
    assert await lists(client) == before


async def test_body_without_content_type_is_accepted_if_it_is_json(
    seeded: tuple[Client, FakeNode],
) -> None:
    client, node = seeded
    response = await client.post(
        P, data=json.dumps({**PRINTER, "id": "p2"}).encode(), skip_auto_headers=["Content-Type"]
    )
    assert response.status == 201
    assert [p.id for p in node.state.printers()] == ["p1", "p2"]


async def test_allow_header_lists_the_route_methods(seeded: tuple[Client, FakeNode]) -> None:
    client, _ = seeded
    response = await client.delete(S)
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"POST", "PUT"}
    assert set((await response.json())["error"]["details"]["allowed_methods"]) == {"POST", "PUT"}


@pytest.mark.parametrize("content_type", sorted(PLAIN_JSON_TYPES))
def test_content_types_taken_as_they_are_pass_the_full_check(content_type: str) -> None:
    """The values accepted without parsing are ones the parsed check accepts too."""
    request = make_mocked_request("POST", P, headers={"Content-Type": content_type})
    assert _is_json_media_type(request.content_type)
    assert (request.charset or "utf-8").lower() in ("utf-8", "utf8")
    _check_content_type(request)  # and the whole check: no error


@pytest.mark.parametrize("content_type", ["application/json; charset=latin-1", "text/json"])
def test_other_content_types_are_still_parsed_and_refused(content_type: str) -> None:
    request = make_mocked_request("POST", P, headers={"Content-Type": content_type})
    with pytest.raises(UnsupportedMediaType):
        _check_content_type(request)
