"""``GET /openapi.json``: the OpenAPI 3 document, built with apispec from the route table.

Every route the app registers is looked up in ``operations.OPERATIONS`` (a route missing there
fails the build, so it fails the tests); the schemas are converted from the marshmallow
classes. Fields of our own (``schemas.Text``, ``Id``, ``CaseInsensitiveEnum``) are described
by ``_our_fields`` so the document says exactly what they accept.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

import raft3d
from raft3d.api import response_schemas as out
from raft3d.api.member_inputs import MAX_NODE_ID_CHARS, NODE_ID_PATTERN, NodeIdField
from raft3d.api.operations import JSON, OPERATIONS, Operation
from raft3d.api.schemas import CaseInsensitiveEnum, Id, Text

OPENAPI_VERSION = "3.0.3"
_DESCRIPTION = (
    "A Raft-replicated print-farm manager. Every node serves the whole API: writes sent to a "
    "follower are forwarded to the leader; reads are linearizable unless ?consistency=local. "
    'Every error is JSON: {"error": {"code", "message", "details"}}. Responses carry the '
    "X-Raft3D-Node and X-Raft3D-Applied-Index headers."
)


class UndocumentedRouteError(LookupError):
    """A route is registered without an entry in ``operations.OPERATIONS``."""


def _our_fields(self: Any, field: fields.Field[Any], **kwargs: Any) -> dict[str, Any]:
    if isinstance(field, NodeIdField):
        return {"type": "string", "maxLength": MAX_NODE_ID_CHARS, "pattern": NODE_ID_PATTERN}
    if isinstance(field, Id):
        text = {"type": "string", "minLength": 1, "maxLength": field.max_chars}
        return {"oneOf": [text, {"type": "integer"}]}
    if isinstance(field, Text):
        return {"type": "string", "minLength": 1, "maxLength": field.max_chars}
    if isinstance(field, CaseInsensitiveEnum):
        names = ", ".join(sorted(field.by_name))
        return {
            "type": "string",
            "pattern": out.enum_pattern(field),
            "description": f"one of {names}, in any letter case",
        }
    return {}


def _operation(op: Operation, method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in sorted(op.answers.items()):
        body: dict[str, Any] = {}
        if answer.schema is not None:
            schema = _ref(answer.schema)
            body = {"schema": {"type": "array", "items": schema} if answer.many else schema}
        elif answer.content_type == JSON:
            body = {"schema": {"type": "object"}}
        else:
            body = {"schema": {"type": "string"}}
        responses[str(status)] = {
            "description": answer.description,
            "content": {answer.content_type: body},
        }
    for status, description in sorted(op.errors.items()):
        responses[str(status)] = {
            "description": description,
            "content": {JSON: {"schema": _ref(out.ErrorOut)}},
        }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": _operation_id(method, op),
        "responses": responses,
    }
    parameters: list[Any] = [
        {
            "in": "path",
            "name": name,
            "required": True,
            "description": op.path_id or name,
            "schema": {"type": "string"},
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        operation["requestBody"] = {
            "required": op.body_required,
            "content": {JSON: {"schema": op.body, **_example(op)}},
        }
    return operation


def _example(op: Operation) -> dict[str, Any]:
    return {} if op.example is None else {"example": dict(op.example)}


def _ref(schema: type[Schema]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{_schema_name(schema)}"}


def _schema_name(schema: type[Schema]) -> str:
    # Request bodies are the validating schemas (``PrinterSchema`` -> ``PrinterInput``),
    # answers the ``response_schemas`` (``PrinterOut`` -> ``Printer``).
    name = schema.__name__
    if name.endswith("Schema"):
        return name.removesuffix("Schema") + "Input"
    return name.removesuffix("Out")


def _operation_id(method: str, op: Operation) -> str:
    words = "".join(c if c.isalnum() else " " for c in op.summary.split(":")[0].split("(")[0])
    return method.lower() + "".join(word.capitalize() for word in words.split()[:6])


def build_document(router: web.UrlDispatcher) -> dict[str, Any]:
    """The OpenAPI document for the routes registered on ``router``."""
    plugin = MarshmallowPlugin(schema_name_resolver=_name_resolver)
    spec = APISpec(
        title="Raft3D",
        version=raft3d.__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": _DESCRIPTION},
    )
    plugin.converter.add_attribute_function(_our_fields)  # type: ignore[union-attr]
    for schema in _named_schemas():
        if _schema_name(schema) not in spec.components.schemas:  # nested ones register early
            spec.components.schema(_schema_name(schema), schema=schema)
    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes():
        method = route.method.upper()
        if method == "HEAD":
            continue  # added beside every GET by aiohttp
        path = route.resource.canonical if route.resource is not None else ""
        op = OPERATIONS.get((method, path))
        if op is None:
            raise UndocumentedRouteError(f"{method} {path} has no entry in OPERATIONS")
        paths.setdefault(path, {})[method.lower()] = _operation(op, method, path)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _named_schemas() -> list[type[Schema]]:
    seen: list[type[Schema]] = [out.ErrorOut]
    for op in OPERATIONS.values():
        for answer in op.answers.values():
            if answer.schema is not None and answer.schema not in seen:
                seen.append(answer.schema)
    return seen


def _name_resolver(schema: type[Schema] | Schema) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    return _schema_name(cls)


class DocumentCache:
    """The encoded document, built on first request: the route table is fixed by then, and
    building costs tens of milliseconds that should not be spent on the event loop again."""

    def __init__(self) -> None:
        self.body: bytes | None = None


DOCUMENT_KEY = web.AppKey("openapi_document", DocumentCache)


def install(app: web.Application) -> None:
    app[DOCUMENT_KEY] = DocumentCache()


async def openapi_document(request: web.Request) -> web.Response:
    cache = request.app[DOCUMENT_KEY]
    if cache.body is None:
        cache.body = json.dumps(build_document(request.app.router)).encode()
    return web.Response(body=cache.body, content_type="application/json")
