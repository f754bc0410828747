"""One front process: ``python -m raft3d.front --config FILE --index I --node-pid PID``.

Started by its node (``raft3d.front.supervisor``), never by hand. It reads the node's own
configuration, listens on the node's client port beside it (SO_REUSEPORT) with the same TLS
and limits, and exits when its node is gone: the front socket closes, or (Linux) the kernel
sends it SIGTERM when the parent dies.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from raft3d.api.connections import ConnectionGuard, GuardedSite
from raft3d.config import Settings, api_options
from raft3d.front.app import create_front_app
from raft3d.front.channel import NodeChannel
from raft3d.front.supervisor import FRONT_SOCKET, HTTP_SOCKET
from raft3d.logs import configure_logging
from raft3d.security.settings import SecurityConfigError
from raft3d.security.tls import TlsContexts
from raft3d.startup import load_node

log = logging.getLogger("raft3d.front")

CONNECT_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raft3d-front", description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--log-level", type=str.upper, default=None)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--node-pid", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the node stops its fronts itself (SIGTERM),
    # after they finished what they were answering.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != args.node_pid:
        return 0  # the node died before this front got going
    loaded = load_node(args.config, data_dir=args.data_dir, log_level=args.log_level)
    if loaded is None:
        return 2
    settings, tls = loaded
    configure_logging(settings.log_level)
    import uvloop

    return uvloop.run(run_front(settings, tls, args.index))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the closed socket still ends this front


def _reload_tls(tls: TlsContexts) -> None:
    try:
        tls.reload()
    except SecurityConfigError as exc:
        log.error("SIGHUP: TLS reload refused, keeping the current certificates: %s", exc)


async def run_front(settings: Settings, tls: TlsContexts | None, index: int) -> int:
    """Serve until SIGTERM (finish in-flight requests) or until the node is gone."""
    http = settings.http_settings
    channel = await NodeChannel.connect(settings.data_dir / FRONT_SOCKET, index, CONNECT_TIMEOUT_S)
    app = create_front_app(api_options(settings), channel, settings.data_dir / HTTP_SOCKET)
    guard = ConnectionGuard(
        settings.node_id,
        max_connections=http.max_connections,
        header_timeout_s=http.header_timeout_s,
    )
    app.middlewares.insert(0, guard.track_requests)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=http.keepalive_timeout_s,
        shutdown_timeout=http.request_timeout_s,
    )
    await runner.setup()
    site = GuardedSite(
        runner,
        settings.http.host,
        settings.http.port,
        guard,
        ssl_context=tls.http_server if tls else None,
        reuse_port=True,
    )
    await site.start()
    log.info("front listening node=%s index=%d addr=%s", settings.node_id, index, settings.http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if tls is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload_tls, tls)
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(channel.lost.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await runner.cleanup()
        await channel.close()
    return 0
