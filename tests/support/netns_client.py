"""An HTTPS client that runs inside a network namespace, driven over stdin/stdout.

Started as ``ip netns exec NS python netns_client.py CA_FILE``. Each input line is a JSON
request ``{"method", "url", "headers", "body", "timeout"}``; each output line is the answer
``{"status", "headers", "body"}`` or ``{"error": "..."}`` when no answer came.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import urllib.parse
from typing import Any


def call(context: ssl.SSLContext, request: dict[str, Any]) -> dict[str, Any]:
    url = urllib.parse.urlsplit(request["url"])
    conn = http.client.HTTPSConnection(
        url.hostname or "", url.port, timeout=request.get("timeout", 5.0), context=context
    )
    body = request.get("body")
    headers = dict(request.get("headers") or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(
            request["method"],
            url.path + (f"?{url.query}" if url.query else ""),
            body=data,
            headers=headers,
        )
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return {"error": repr(exc)}
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return {"status": response.status, "headers": dict(response.getheaders()), "body": parsed}


def main() -> None:
    context = ssl.create_default_context(cafile=sys.argv[1])
    for line in sys.stdin:
        print(json.dumps(call(context, json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
