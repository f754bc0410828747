"""What the write tests share: the client type, a request handler's type, the printer and
the job they write, a test server's URL (``url_of``) and an error's code (``error_code``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

Client = TestClient[web.Request, web.Application]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PRINTER = {"id": "p1", "company": "Creality", "model": "Ender 3"}
# A job on printer p1 and filament f1, small enough for any roll.
JOB = {
    "id": "j1",
    "printer_id": "p1",
    "filament_id": "f1",
    "filepath": "a",
    "print_weight_in_grams": 5,
}


def url_of(server: TestServer | Client) -> str:
    return f"http://{server.host}:{server.port}"


def error_code(payload: Any) -> str:
    code: str = payload["error"]["code"]
    return code
