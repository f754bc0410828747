"""``raft3d members | join | remove | transfer``: cluster membership through any node's HTTP API.

Each command talks to the first node that answers among ``--url`` (several allowed, tried in
turn; a node that cannot be reached or answers 503 is skipped); the node forwards changes to
the leader itself. Exit status: 0 done, 1 refused or no node could do it (the API's message is
printed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
COMMANDS = ("members", "join", "remove", "transfer")


class Refused(Exception):
    """A node answered with an error that another node would answer the same way."""


class Unreachable(Exception):
    """No node among the URLs could answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    url: str  # the node that answered
    status: int
    body: dict[str, Any]


class ApiClient:
    """Sends one request to the first of ``urls`` that can answer it."""

    def __init__(
        self, urls: Sequence[str], timeout: float, ca: Path | None, token: str | None
    ) -> None:
        self.urls = [url.rstrip("/") for url in urls] or [DEFAULT_URL]
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(ca)) if ca else None
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, body: object | None = None) -> Answer:
        problems = []
        for url in self.urls:
            try:
                answer = self._once(method, url, path, body)
            except OSError as exc:
                problems.append(f"{url}: {_reason(exc)}")
                continue
            if answer.status == 503:
                problems.append(f"{url}: {_message(answer)}")
                continue
            if answer.status >= 400:
                raise Refused(_message(answer))
            return answer
        raise Unreachable("no node could answer: " + "; ".join(problems))

    def _once(self, method: str, url: str, path: str, body: object | None) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self.context
            ) as resp:
                return Answer(url, resp.status, _json_object(resp.read()))
        except urllib.error.HTTPError as exc:
            return Answer(url, exc.code, _json_object(exc.read()))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {"error": {"code": "not_json", "message": raw[:200].decode(errors="replace")}}
    return body if isinstance(body, dict) else {"value": body}


def _reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _message(answer: Answer) -> str:
    error = answer.body.get("error")
    if isinstance(error, dict):
        return f"{answer.status} {error.get('code')}: {error.get('message')}"
    return f"HTTP {answer.status}"


def add_commands(sub: Any) -> None:
    """Register the membership commands on the ``raft3d`` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        action="append",
        default=None,
        help=f"a node's HTTP address; repeat to try several in turn (default {DEFAULT_URL})",
    )
    common.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    common.add_argument("--ca", type=Path, help="CA file to verify HTTPS nodes with")
    common.add_argument(
        "--token", default=os.environ.get("RAFT3D_TOKEN"), help="bearer token (or RAFT3D_TOKEN)"
    )
    sub.add_parser("members", parents=[common], help="list the cluster's members")
    join = sub.add_parser("join", parents=[common], help="add a node to the cluster")
    join.add_argument("node_url", nargs="*", metavar="URL", help="a member's HTTP address")
    join.add_argument("--node-id", required=True, help="the new node's id")
    join.add_argument("--raft", required=True, help="its advertised Raft address, host:port")
    join.add_argument("--http", required=True, help="its HTTP base URL, http(s)://host:port")
    join.add_argument(
        "--learner", action="store_true", help="keep it a learner (no automatic promotion)"
    )
    remove = sub.add_parser("remove", parents=[common], help="remove a member")
    remove.add_argument("node_id", metavar="ID")
    remove.add_argument(
        "--force", action="store_true", help="even if the rest could not reach a quorum"
    )
    transfer = sub.add_parser("transfer", parents=[common], help="hand leadership over")
    transfer.add_argument("node_id", nargs="?", metavar="ID", help="default: most caught-up")


def run(args: argparse.Namespace) -> int:
    urls = [*getattr(args, "node_url", []), *(args.url or [])] or [DEFAULT_URL]
    client = ApiClient(urls, args.timeout, args.ca, args.token)
    try:
        if args.command == "members":
            print_members(client.call("GET", "/cluster/members").body)
        elif args.command == "join":
            body = {"node_id": args.node_id, "raft_addr": args.raft, "http_addr": args.http}
            if args.learner:
                body["promote"] = False
            answer = client.call("POST", "/cluster/members", body)
            then = "stays a learner" if args.learner else "is promoted to voter once caught up"
            print(f"{args.node_id} added as a learner; it {then}")
            print_members(answer.body)
        elif args.command == "remove":
            query = "?force=true" if args.force else ""
            path = f"/cluster/members/{urllib.parse.quote(args.node_id, safe='')}{query}"
            answer = client.call("DELETE", path)
            print(f"{args.node_id} removed")
            print_members(answer.body)
        else:
            body = {} if args.node_id is None else {"node_id": args.node_id}
            answer = client.call("POST", "/cluster/leader", body)
            print(f"leader is now {answer.body.get('leader_id')}")
    except (Refused, Unreachable) as exc:
        print(f"raft3d: {exc}", file=sys.stderr)
        return 1
    return 0


def print_members(body: dict[str, Any]) -> None:
    header = ("NODE", "SUFFRAGE", "RAFT", "HTTP", "REACHABLE", "MATCH")
    rows = [header]
    for m in body.get("members", []):
        match = m.get("match_index")
        rows.append(
            (
                str(m.get("node_id")),
                str(m.get("suffrage")),
                str(m.get("raft_addr")),
                str(m.get("http_addr")),
                "yes" if m.get("reachable") else "no",
                "-" if match is None else str(match),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    pending = " (change pending)" if body.get("change_pending") else ""
    print(f"configuration index {body.get('config_index')}{pending}")
