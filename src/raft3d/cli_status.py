"""``raft3d status``: a table of the cluster's nodes, read from each node's ``/cluster/status``."""

from __future__ import annotations

import json
import ssl
import sys
import urllib.request
from pathlib import Path
from typing import Any


class Client:
    """How ``raft3d status`` calls nodes: optional CA for HTTPS, optional bearer token."""

    def __init__(self, ca: Path | None, token: str | None) -> None:
        self.context = ssl.create_default_context(cafile=str(ca)) if ca else None
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}


def show_status(url: str, timeout: float, client: Client | None = None) -> int:
    client = client or Client(None, None)
    base = url.rstrip("/")
    try:
        first = _get_json(f"{base}/cluster/status", timeout, client)
    except (OSError, ValueError) as exc:
        print(f"raft3d: cannot read {base}/cluster/status: {exc}", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = [first]
    for peer in first.get("peers", []):
        try:
            peer_url = peer["http_addr"].rstrip("/")
            rows.append(_get_json(f"{peer_url}/cluster/status", timeout, client))
        except (OSError, ValueError):
            rows.append({"node_id": peer["node_id"], "http": peer["http_addr"], "down": True})
    reach = {p["node_id"]: p.get("reachable") for p in first.get("peers", [])}
    http_of = {p["node_id"]: p["http_addr"] for p in first.get("peers", [])}
    http_of[str(first.get("node_id"))] = base
    header = (
        "NODE",
        "HTTP",
        "ROLE",
        "TERM",
        "LEADER",
        "COMMIT",
        "APPLIED",
        "LAST",
        "SNAP",
        "REACHABLE",
    )
    table = [header]
    for r in sorted(rows, key=lambda r: str(r.get("node_id"))):
        node_id = str(r.get("node_id"))
        if r.get("down"):
            table.append((node_id, r["http"], "unreachable", "-", "-", "-", "-", "-", "-", "no"))
            continue
        reachable = "self" if node_id == first.get("node_id") else _yes_no(reach.get(node_id))
        table.append(
            (
                node_id,
                str(http_of.get(node_id, "-")),
                str(r.get("role")),
                str(r.get("term")),
                str(r.get("leader_id") or "-"),
                str(r.get("commit_index")),
                str(r.get("applied_index")),
                str(r.get("last_log_index")),
                str(r.get("snapshot_index")),
                reachable,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _yes_no(value: object) -> str:
    return "yes" if value is True else "no" if value is False else "?"


def _get_json(url: str, timeout: float, client: Client) -> dict[str, Any]:
    request = urllib.request.Request(url, headers=client.headers)
    with urllib.request.urlopen(request, timeout=timeout, context=client.context) as resp:
        body = json.loads(resp.read())
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body
