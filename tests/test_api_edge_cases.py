"""Edge cases of the HTTP contract: odd encodings, numbers, unicode, headers, methods and paths.

Complements ``test_api_inputs.py``: every refusal here is checked the same way (status, JSON
error shape, nothing proposed, state unchanged), and the odd-but-valid inputs are checked to be
accepted with the meaning SPEC §2 gives them.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

from tests.support.fakes import FakeNode, make_app
from tests.test_api_inputs import FILAMENT, JOB, MAX_BODY, PRINTER, Bad, F, J, P, S, lists

Client = TestClient[web.Request, web.Application]

JSON = "application/json"
EMOJI = "\U0001f600"  # outside the BMP: one character, four UTF-8 bytes, two UTF-16 units


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def refused(path: str, data: bytes, status: int, code: str, **headers: str) -> Bad:
    return Bad("POST", path, data, status, code, headers)


CASES: dict[str, Bad] = {
    # Content-Encoding the body does not actually have: the client's fault, not a 500; the
    # connection is closed after the answer, and the lists read afterwards use a fresh one.
    "corrupt gzip body": refused(
        P, b"not gzip", 400, "invalid_json", **{"Content-Encoding": "gzip"}
    ),
    "corrupt deflate status body": Bad(
        "POST", S + "?status=running", b"xx", 400, "invalid_json", {"Content-Encoding": "deflate"}
    ),
    "gzip bomb": refused(
        P,
        gzip.compress(b" " * (64 * MAX_BODY)),
        413,
        "body_too_large",
        **{"Content-Encoding": "gzip"},
    ),
    # Text that is not what it looks like.
    "utf-8 byte order mark": refused(P, b"\xef\xbb\xbf" + body(PRINTER), 400, "invalid_json"),
    "raw NUL byte in a string": refused(
        P, b'{"company": "a\x00b", "model": "m"}', 400, "invalid_json"
    ),
    "lone surrogate id": refused(
        P, b'{"id": "\\udc00", "company": "a", "model": "m"}', 400, "invalid_body"
    ),
    "lone surrogate filepath": refused(
        J, body({**JOB, "id": "j9"}).replace(b'"a.gcode"', b'"\\ud800.gcode"'), 400, "invalid_body"
    ),
    "lone surrogate field name": refused(
        P, b'{"\\ud800": 1, "company": "a", "model": "m"}', 400, "invalid_body"
    ),
    "lone surrogate status": refused(S, b'{"status": "\\ud800"}', 400, "invalid_body"),
    "lone surrogate filament type": refused(
        F, b'{"type": "\\ud800", "color": "r", "total_weight_in_grams": 1}', 400, "invalid_body"
    ),
    "129 non-BMP characters as id": refused(
        P, body({**PRINTER, "id": EMOJI * 129}), 400, "invalid_body"
    ),
    "empty field name": refused(P, body({**PRINTER, "": 1}), 400, "invalid_body"),
    # Numbers that are not integers, whatever their value.
    "id 1.0": refused(P, b'{"id": 1.0, "company": "a", "model": "m"}', 400, "invalid_body"),
    "id in exponent notation": refused(
        P, b'{"id": 1e2, "company": "a", "model": "m"}', 400, "invalid_body"
    ),
    "id -1e400 (infinite)": refused(
        P, b'{"id": -1e400, "company": "a", "model": "m"}', 400, "invalid_body"
    ),
    "weight in exponent notation": refused(
        F, b'{"type": "PLA", "color": "r", "total_weight_in_grams": 1E3}', 400, "invalid_body"
    ),
    "weight 1e400 (infinite)": refused(
        F, b'{"type": "PLA", "color": "r", "total_weight_in_grams": 1e400}', 400, "invalid_body"
    ),
    "4000-digit integer id": refused(
        P, b'{"id": ' + b"9" * 4000 + b', "company": "a", "model": "m"}', 400, "invalid_body"
    ),
    # Structures where strings are expected.
    "object as filepath": refused(J, body({**JOB, "filepath": {"path": "a"}}), 400, "invalid_body"),
    "array as color": refused(F, body({**FILAMENT, "color": ["red"]}), 400, "invalid_body"),
    "object as printer_id": refused(
        J, body({**JOB, "printer_id": {"id": "p1"}}), 400, "invalid_body"
    ),
    "duplicate status keys": refused(
        S, b'{"status": "running", "status": "done"}', 400, "invalid_json"
    ),
    "null status": refused(S, b'{"status": null}', 400, "invalid_body"),
    "null job status on create": refused(
        J, body({**JOB, "id": "j9", "status": None}), 400, "invalid_body"
    ),
    # Query strings.
    "empty status value": Bad("POST", S + "?status=", None, 400, "invalid_query"),
    "status without a value": Bad("POST", S + "?status", None, 400, "invalid_query"),
    "status not UTF-8": Bad("POST", S + "?status=%FF", None, 400, "invalid_query"),
    "status is an encoded surrogate": Bad(
        "POST", S + "?status=%ED%A0%80", None, 400, "invalid_query"
    ),
    "consistency on a write": Bad(
        "POST", S + "?status=running&consistency=local", None, 400, "invalid_query"
    ),
    "status in query and a text body": Bad(
        "POST",
        S + "?status=running",
        b'{"status": "running"}',
        415,
        "unsupported_media_type",
        {"Content-Type": "text/plain"},
    ),
    "empty status filter": Bad("GET", J + "?status=", None, 400, "invalid_query"),
    "empty consistency": Bad("GET", P + "?consistency=", None, 400, "invalid_query"),
    "repeated consistency": Bad(
        "GET", F + "?consistency=local&consistency=local", None, 400, "invalid_query"
    ),
    "parameter name in another case": Bad("GET", J + "?Status=queued", None, 400, "invalid_query"),
    "non-ASCII parameter name": Bad("GET", J + "?st%C3%A4tus=queued", None, 400, "invalid_query"),
    # Content types.
    "empty Content-Type": refused(
        P, body(PRINTER), 415, "unsupported_media_type", **{"Content-Type": ""}
    ),
    "Content-Type of separators": refused(
        P, body(PRINTER), 415, "unsupported_media_type", **{"Content-Type": ";;;"}
    ),
    "charset without a value": refused(
        P,
        body(PRINTER),
        415,
        "unsupported_media_type",
        **{"Content-Type": "application/json; charset"},
    ),
    "utf-16 json": refused(
        P,
        json.dumps(PRINTER).encode("utf-16"),
        415,
        "unsupported_media_type",
        **{"Content-Type": "application/json; charset=utf-16"},
    ),
    # Idempotency-Key values.
    "idempotency key with a tab": refused(
        P, body(PRINTER), 400, "invalid_header", **{"Idempotency-Key": "a\tb"}
    ),
    "non-ASCII idempotency key": refused(
        P, body(PRINTER), 400, "invalid_header", **{"Idempotency-Key": "clé"}
    ),
    # Methods and paths.
    "OPTIONS": Bad("OPTIONS", P, None, 405, "method_not_allowed"),
    "TRACE": Bad("TRACE", J, None, 405, "method_not_allowed"),
    "DELETE a job's status": Bad("DELETE", S, None, 405, "method_not_allowed"),
    "trailing slash": Bad("POST", P + "/", body(PRINTER), 404, "not_found"),
    "double slash": Bad("GET", "/api/v1//printers", None, 404, "not_found"),
    "empty job id": Bad("POST", "/api/v1/print_jobs//status?status=done", None, 404, "not_found"),
    "dot-dot job id": Bad(
        "POST", "/api/v1/print_jobs/%2E%2E/status?status=done", None, 404, "not_found"
    ),
    "129 non-BMP characters as job id": Bad(
        "POST", f"/api/v1/print_jobs/{EMOJI * 129}/status?status=done", None, 404, "job_not_found"
    ),
}


@pytest.fixture
async def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    client = await aiohttp_client(make_app(node, max_body_bytes=MAX_BODY))
    for path, payload in (
        (P, {**PRINTER, "id": "p1"}),
        (F, {**FILAMENT, "id": "f1"}),
        (J, {**JOB, "id": "j1"}),
    ):
        response = await client.post(path, json=payload)
        assert response.status == 201
    node.proposals.clear()
    return client


async def assert_json_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status
    assert response.content_type == JSON
    payload = await response.json()
    assert set(payload) == {"error"}
    error: dict[str, Any] = payload["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_edge_case_is_refused_and_changes_nothing(
    client: Client, node: FakeNode, case: Bad
) -> None:
    digest, before = node.state.digest(), await lists(client)
    headers = {"Content-Type": JSON, **case.headers}
    response = await client.request(case.method, case.path, data=case.body, headers=headers)

    await assert_json_error(response, case.status, case.code)
    if case.status == 405:
        assert response.headers["Allow"]
    assert node.proposals == []
    assert node.state.digest() == digest
    assert await lists(client) == before


@pytest.mark.parametrize("encoded_id", ["j1%2Fx", "%00", "%FF", "%ED%A0%80", "j1%3Fstatus=done"])
async def test_unknown_job_ids_in_the_url_are_404(
    client: Client, node: FakeNode, encoded_id: str
) -> None:
    digest = node.state.digest()
    response = await client.post(f"/api/v1/print_jobs/{encoded_id}/status?status=done")
    await assert_json_error(response, 404, "job_not_found")
    assert node.state.digest() == digest


async def test_repeated_idempotency_key_header_is_refused(client: Client, node: FakeNode) -> None:
    headers = CIMultiDict(
        [("Content-Type", JSON), ("Idempotency-Key", "k"), ("Idempotency-Key", "k")]
    )
    response = await client.post(P, data=body(PRINTER), headers=headers)
    error = await assert_json_error(response, 400, "invalid_header")
    assert "Idempotency-Key" in error["details"]
    assert node.proposals == []


@pytest.mark.parametrize("granted", ["\u00b2", "\u0663", "9" * 400, "9" * 5000, "0", "-5", "1e3"])
async def test_unsigned_forwarding_headers_are_refused(
    client: Client, node: FakeNode, granted: str
) -> None:
    # These headers are meant for node-to-node forwarding, but any client can send them:
    # without a peer's signature they are refused, whatever they say (a malformed budget
    # once gave a 500), and nothing is written.
    response = await client.post(
        P,
        json={**PRINTER, "id": "p2"},
        headers={"X-Raft3D-Forwarded-By": "n2", "X-Raft3D-Budget-Ms": granted},
    )
    assert response.status == 401, await response.text()
    assert (await response.json())["error"]["code"] == "unauthenticated_forward"
    assert [p.id for p in node.state.printers()] == ["p1"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "Application/JSON; Charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json;charset=utf8",
        "application/merge-patch+json",
    ],
)
async def test_json_content_type_variants_are_accepted(
    client: Client, node: FakeNode, content_type: str
) -> None:
    response = await client.post(
        P, data=body({**PRINTER, "id": "p2"}), headers={"Content-Type": content_type}
    )
    assert response.status == 201, await response.text()
    assert [p.id for p in node.state.printers()] == ["p1", "p2"]


async def test_compressed_body_is_accepted(client: Client, node: FakeNode) -> None:
    for encoding, data in (
        ("gzip", gzip.compress(body({**PRINTER, "id": "p2"}))),
        ("deflate", zlib.compress(body({**PRINTER, "id": "p3"}))),
    ):
        headers = {"Content-Type": JSON, "Content-Encoding": encoding}
        response = await client.post(P, data=data, headers=headers)
        assert response.status == 201, await response.text()
    assert [p.id for p in node.state.printers()] == ["p1", "p2", "p3"]


async def test_ids_are_counted_in_characters_and_round_trip(client: Client, node: FakeNode) -> None:
    # 128 characters, 512 UTF-8 bytes: within the limit, which counts characters.
    long_id = EMOJI * 128
    response = await client.post(J, json={**JOB, "id": long_id})
    assert response.status == 201
    assert (await response.json())["id"] == long_id

    # Addressable in the URL, both raw and percent-encoded by the client.
    response = await client.post(f"/api/v1/print_jobs/{long_id}/status?status=running")
    assert response.status == 200
    assert (await response.json())["status"] == "Running"
    listed = await (await client.get(J + "?status=running")).json()
    assert [job["id"] for job in listed] == [long_id]


async def test_job_id_with_a_slash_is_addressable_percent_encoded(client: Client) -> None:
    response = await client.post(J, json={**JOB, "id": "batch/7"})
    assert response.status == 201
    response = await client.put("/api/v1/print_jobs/batch%2F7/status", json={"status": "running"})
    assert response.status == 200
    assert (await response.json())["id"] == "batch/7"


async def test_escaped_surrogate_pair_and_nul_are_valid_text(
    client: Client, node: FakeNode
) -> None:
    raw = b'{"id": "\\ud83d\\ude00", "company": "a\\u0000b", "model": "m"}'
    response = await client.post(P, data=raw, headers={"Content-Type": JSON})
    assert response.status == 201
    assert await response.json() == {"id": EMOJI, "company": "a\x00b", "model": "m"}
    assert node.state.printers()[-1].id == EMOJI


async def test_integer_ids_are_their_decimal_strings(client: Client, node: FakeNode) -> None:
    response = await client.post(P, json={**PRINTER, "id": 42})
    assert response.status == 201
    assert (await response.json())["id"] == "42"
    # The same id given as a string is the same printer: a duplicate.
    digest = node.state.digest()
    response = await client.post(P, json={**PRINTER, "id": "42"})
    await assert_json_error(response, 409, "duplicate_id")
    assert node.state.digest() == digest
    # Negative zero is zero.
    raw = b'{"id": -0, "company": "a", "model": "m"}'
    response = await client.post(P, data=raw, headers={"Content-Type": JSON})
    assert response.status == 201
    assert (await response.json())["id"] == "0"


async def test_status_from_query_and_body_may_be_spelt_differently(client: Client) -> None:
    response = await client.post(S + "?status=CANCELED", json={"status": "cancelled"})
    assert response.status == 200
    assert (await response.json())["status"] == "Cancelled"


async def test_whitespace_body_with_query_status_uses_the_query(client: Client) -> None:
    response = await client.post(
        S + "?status=running", data=b" \r\n\t ", headers={"Content-Type": JSON}
    )
    assert response.status == 200
    assert (await response.json())["status"] == "Running"


async def test_head_on_lists_answers_like_get_without_a_body(client: Client) -> None:
    for path in (P, F, J + "?status=queued"):
        got = await client.get(path)
        head = await client.head(path)
        assert head.status == got.status == 200
        assert await head.read() == b""
        assert head.headers["X-Raft3D-Applied-Index"] == got.headers["X-Raft3D-Applied-Index"]


async def test_head_on_a_write_route_is_405(client: Client, node: FakeNode) -> None:
    response = await client.head(S)
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"POST", "PUT"}
    assert node.proposals == []


async def test_read_parameters_are_case_insensitive_in_value(client: Client) -> None:
    response = await client.get(J + "?status=QUEUED&consistency=LOCAL")
    assert response.status == 200
    assert [job["id"] for job in await response.json()] == ["j1"]


async def test_longest_idempotency_key_with_spaces_replays(client: Client, node: FakeNode) -> None:
    key = "k " * 127 + "kk"  # 256 printable ASCII characters, spaces inside
    headers = {"Idempotency-Key": key}
    first = await client.post(P, json={**PRINTER, "id": "p2"}, headers=headers)
    again = await client.post(P, json={**PRINTER, "id": "p2"}, headers=headers)
    assert first.status == again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await first.json() == await again.json()
    assert [p.id for p in node.state.printers()] == ["p1", "p2"]
