"""Command line: ``raft3d serve`` runs a node; ``raft3d status`` shows a cluster;
``raft3d certs`` and ``raft3d token`` help secure one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from raft3d.config import ConfigError, Settings, load_settings
from raft3d.logs import configure_logging
from raft3d.security import commands
from raft3d.security.settings import SecurityConfigError
from raft3d.security.tls import TlsContexts

log = logging.getLogger("raft3d.cli")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Exit status of a node that halted (a disk error, an entry it cannot apply): crash-only, its
# supervisor restarts it and it recovers from its durable state.
EXIT_HALTED = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raft3d", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one node of a cluster")
    serve.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    serve.add_argument("--data-dir", type=Path, help="overrides node.data_dir")
    serve.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        help="console level (alias of --console-level)",
    )
    serve.add_argument("--console-level", type=str.upper, choices=LEVELS)
    serve.add_argument("--log-file", type=Path, help="also write JSON lines to this file")
    serve.add_argument("--file-level", type=str.upper, choices=LEVELS, default="DEBUG")

    status = sub.add_parser("status", help="print a table of the cluster's nodes")
    status.add_argument("--url", default="http://127.0.0.1:8080", help="any node's HTTP address")
    status.add_argument("--timeout", type=float, default=2.0)
    status.add_argument("--ca", type=Path, help="CA file to verify HTTPS nodes with")
    status.add_argument(
        "--token", default=os.environ.get("RAFT3D_TOKEN"), help="bearer token (or RAFT3D_TOKEN)"
    )
    commands.add_commands(sub)

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "certs":
        return commands.run_certs(args)
    if args.command == "token":
        return commands.run_token(args)
    return _status(args.url, args.timeout, _Client(args.ca, args.token))


def _serve(args: argparse.Namespace) -> int:
    console_level = args.console_level or args.log_level
    try:
        settings = load_settings(args.config, data_dir=args.data_dir, log_level=console_level)
        tls = (
            TlsContexts(settings.tls, settings.node_id, settings.public_http.host.lower())
            if settings.tls
            else None
        )
    except (ConfigError, SecurityConfigError) as exc:
        print(f"raft3d: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, args.log_file, args.file_level)
    import uvloop

    return uvloop.run(run_node(settings, tls))


async def run_node(settings: Settings, tls: TlsContexts | None = None) -> int:
    """Run a node until SIGTERM or SIGINT (then answer in-flight requests, close cleanly and
    return 0) or until it halts (then close and return ``EXIT_HALTED``).

    SIGHUP re-reads the TLS certificate files (a bad set is refused and the old one kept).
    """
    halted = asyncio.Event()
    app = build_app(settings, tls, on_halt=lambda _exc: halted.set())
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.http.host,
        settings.http.port,
        shutdown_timeout=settings.http_settings.request_timeout_s,
        reuse_address=True,
        ssl_context=tls.http_server if tls else None,
    )
    await site.start()
    log.info(
        "http listening node=%s addr=%s advertised=%s://%s",
        settings.node_id,
        settings.http,
        settings.http_scheme,
        settings.public_http,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_tls, tls)
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(halted.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if halted.is_set():
            log.critical(
                "node halted, exiting with status %d to be restarted node=%s",
                EXIT_HALTED,
                settings.node_id,
            )
        else:
            log.info("shutting down node=%s", settings.node_id)
    finally:
        for wait in waits:
            wait.cancel()
        await runner.cleanup()  # stops listening, waits for handlers, then stops the node
    return EXIT_HALTED if halted.is_set() else 0


def _reload_tls(tls: TlsContexts | None) -> None:
    if tls is None:
        log.info("SIGHUP: TLS is off, nothing to reload")
        return
    try:
        tls.reload()
    except SecurityConfigError as exc:
        log.error("SIGHUP: TLS reload refused, keeping the current certificates: %s", exc)
    else:
        log.info("SIGHUP: TLS certificates reloaded")


def build_app(
    settings: Settings,
    tls: TlsContexts | None = None,
    on_halt: Callable[[BaseException], None] | None = None,
) -> web.Application:
    """The node and its HTTP app, wired so the node outlives every request handler."""
    from raft3d.api import create_app
    from raft3d.domain.state import FarmStateMachine
    from raft3d.node.metrics import NodeCollector
    from raft3d.node.wiring import build_node

    state = FarmStateMachine()
    node = build_node(settings, state, tls=tls)
    if on_halt is not None:
        node.halt_listeners.append(on_halt)
    app = create_app(
        settings,
        node,
        state,
        collectors=[NodeCollector(node)],
        client_ssl=tls.http_client if tls else None,
    )

    async def node_lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.stop()

    app.cleanup_ctx.insert(0, node_lifecycle)
    return app


class _Client:
    """How ``raft3d status`` calls nodes: optional CA for HTTPS, optional bearer token."""

    def __init__(self, ca: Path | None, token: str | None) -> None:
        self.context = ssl.create_default_context(cafile=str(ca)) if ca else None
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}


def _status(url: str, timeout: float, client: _Client | None = None) -> int:
    client = client or _Client(None, None)
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


def _get_json(url: str, timeout: float, client: _Client) -> dict[str, Any]:
    request = urllib.request.Request(url, headers=client.headers)
    with urllib.request.urlopen(request, timeout=timeout, context=client.context) as resp:
        body = json.loads(resp.read())
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


if __name__ == "__main__":
    sys.exit(main())
