"""The OpenAPI document, the pages and assets a browser loads, and cross-node CORS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from pytest_aiohttp import AiohttpClient

from raft3d.api import operations, pages
from raft3d.api.openapi import UndocumentedRouteError, build_document
from raft3d.api.pages import ASSETS
from raft3d.node.status import PeerInfo
from raft3d.security.settings import AuthSettings, TokenEntry
from raft3d.security.tokens import hash_token
from tests.support.fakes import FakeNode, make_app
from tests.support.secure import TOKENS, bearer

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    return await aiohttp_client(make_app(node))


async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200
    doc: dict[str, Any] = await response.json()
    return doc


async def test_document_is_valid_openapi_3(client: Client) -> None:
    doc = await document(client)
    validate(doc)  # raises on an invalid document
    assert doc["openapi"].startswith("3.")


async def test_every_route_is_documented_with_its_inputs_answers_and_errors(
    client: Client,
) -> None:
    doc = await document(client)
    registered = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == registered
    create_job = doc["paths"]["/api/v1/print_jobs"]["post"]
    body = create_job["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PrintJobInput"}
    for status in ("400", "409", "422", "503"):
        error = create_job["responses"][status]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    filters = {p["name"] for p in doc["paths"]["/api/v1/print_jobs"]["get"]["parameters"]}
    assert filters == {"consistency", "status", "printer_id", "filament_id", "limit", "after"}
    by_id = doc["paths"]["/api/v1/filaments/{id}"]["get"]
    assert set(by_id["responses"]) >= {"200", "404"}


async def test_schemas_come_from_the_validating_marshmallow_schemas(client: Client) -> None:
    schemas = (await document(client))["components"]["schemas"]
    printer_in = schemas["PrinterInput"]
    assert printer_in["required"] == ["company", "model"]
    assert printer_in["additionalProperties"] is False
    assert printer_in["properties"]["company"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
    }
    grams = schemas["FilamentInput"]["properties"]["total_weight_in_grams"]
    assert (grams["type"], grams["minimum"], grams["maximum"]) == ("integer", 1, 10_000_000)
    roll_type = schemas["FilamentInput"]["properties"]["type"]["pattern"]
    assert "[pP][eE][tT][gG]" in roll_type
    assert "available_weight_in_grams" in schemas["FilamentView"]["required"]
    assert set(schemas["Error"]["properties"]) == {"error"}


async def test_operation_ids_are_unique(client: Client) -> None:
    doc = await document(client)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_every_shipped_file_is_served() -> None:
    static = Path(pages.__file__).with_name("static")
    shipped = {path.name for path in static.iterdir()}
    assert shipped == {*ASSETS, "index.html", "docs.html"}


def test_a_route_without_an_operation_fails_the_build(node: FakeNode) -> None:
    app = make_app(node)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/undocumented", handler)
    with pytest.raises(UndocumentedRouteError, match="/undocumented"):
        build_document(app.router)
    assert ("GET", "/undocumented") not in operations.OPERATIONS


@pytest.mark.parametrize(("path", "marker"), [("/", "Raft3D farm"), ("/docs", "API reference")])
async def test_pages_are_served_from_the_package(client: Client, path: str, marker: str) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "text/html"
    text = await response.text()
    assert marker in text
    assert "http://" not in text and "https://" not in text  # nothing from elsewhere
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


async def test_assets_are_served_and_nothing_else(client: Client) -> None:
    for name, content_type in ASSETS.items():
        response = await client.get(f"/static/{name}")
        assert response.status == 200, name
        assert response.content_type == content_type
        assert len(await response.read()) > 100
    for bad in ("index.html.bak", "..%2F__init__.py", "%2e%2e%2fpages.py", "nope.js"):
        response = await client.get(f"/static/{bad}")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_cors_allows_the_clusters_members_only(client: Client, node: FakeNode) -> None:
    node.peers = (PeerInfo("n2", "127.0.0.1:9002", "http://127.0.0.1:8002", True, None),)
    member = {"Origin": "http://localhost:8002"}
    response = await client.get("/api/v1/printers", headers=member)
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:8002"
    assert "X-Raft3D-Applied-Index" in response.headers["Access-Control-Expose-Headers"]
    preflight = await client.options(
        "/api/v1/printers",
        headers={
            **member,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    assert response.headers["Vary"] == "Origin"
    plain = await client.get("/api/v1/printers")  # no Origin (curl): no CORS headers at all
    assert not {"Vary", "Access-Control-Allow-Origin"} & set(plain.headers)
    stranger = {"Origin": "http://evil.example:8002"}
    response = await client.get("/api/v1/printers", headers=stranger)
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await client.options(
        "/api/v1/printers", headers={**stranger, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Methods" not in preflight.headers


def test_documented_examples_pass_their_own_schemas() -> None:
    examples = [(op.body, op.example) for op in operations.OPERATIONS.values() if op.example]
    assert len(examples) >= 4
    for body, example in examples:
        assert body is not None
        body().load(dict(example))  # raises ValidationError if the example has gone stale


async def test_with_tokens_on_pages_are_public_and_the_farm_is_not(
    aiohttp_client: AiohttpClient,
) -> None:
    auth = AuthSettings(
        enabled=True,
        tokens=(TokenEntry("vic", "viewer", hash_token(TOKENS["viewer"])),),
    )
    client = await aiohttp_client(make_app(FakeNode("n1"), auth=auth))
    for path in ("/", "/docs", "/openapi.json", "/static/dashboard.js"):
        assert (await client.get(path)).status == 200, path
    for method, path in (("GET", "/api/v1/printers"), ("POST", "/"), ("GET", "/cluster/status")):
        response = await client.request(method, path)
        assert response.status == 401, (method, path)
    response = await client.get("/api/v1/printers", headers=bearer("viewer"))
    assert response.status == 200
