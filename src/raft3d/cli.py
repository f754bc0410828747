"""Command line: ``raft3d serve`` runs a node; ``raft3d status`` shows a cluster;
``raft3d members|join|remove|transfer`` change who is in it; ``raft3d certs`` and
``raft3d token`` help secure one."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import gc
import logging
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from raft3d import cli_members, cli_status, joining, runtime
from raft3d.api.connections import ConnectionGuard, GuardedSite
from raft3d.api.typedefs import GUARD_KEY
from raft3d.config import Settings, api_options
from raft3d.front.supervisor import Fronts, ReservedPort, front_command
from raft3d.logs import configure_logging
from raft3d.loop_lag import LoopLagMonitor
from raft3d.node.heap import tune_collector
from raft3d.node.native_heap import limit_arenas
from raft3d.security import commands
from raft3d.security.settings import SecurityConfigError
from raft3d.startup import load_node
from raft3d.storage.errors import StorageError

if TYPE_CHECKING:
    # Imported where TLS is configured: ``cryptography`` is 8 MB of a node's memory.
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
    serve.add_argument(
        "--join",
        action="append",
        default=[],
        metavar="URL",
        help="a new node: ask the cluster at URL (any member; repeat for several) to add it",
    )
    serve.add_argument(
        "--join-timeout", type=float, default=joining.DEFAULT_DEADLINE_S, help="seconds"
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="HTTP front processes beside the node on its port (overrides http.workers)",
    )
    serve.add_argument(
        "--token",
        default=os.environ.get("RAFT3D_TOKEN"),
        help="admin bearer token for --join when the cluster has [auth] on (or RAFT3D_TOKEN)",
    )

    status = sub.add_parser("status", help="print a table of the cluster's nodes")
    status.add_argument("--url", default="http://127.0.0.1:8080", help="any node's HTTP address")
    status.add_argument("--timeout", type=float, default=2.0)
    status.add_argument("--ca", type=Path, help="CA file to verify HTTPS nodes with")
    status.add_argument(
        "--token", default=os.environ.get("RAFT3D_TOKEN"), help="bearer token (or RAFT3D_TOKEN)"
    )
    commands.add_commands(sub)
    cli_members.add_commands(sub)

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "certs":
        return commands.run_certs(args)
    if args.command == "token":
        return commands.run_token(args)
    if args.command in cli_members.COMMANDS:
        return cli_members.run(args)
    return cli_status.show_status(args.url, args.timeout, cli_status.Client(args.ca, args.token))


def _serve(args: argparse.Namespace) -> int:
    console_level = args.console_level or args.log_level
    loaded = load_node(
        args.config, data_dir=args.data_dir, log_level=console_level, workers=args.workers
    )
    if loaded is None:
        return 2
    settings, tls = loaded
    configure_logging(settings.log_level, args.log_file, args.file_level)
    if settings.uses_demo_secret:
        log.warning(
            "cluster.secret is the public demo secret from conf/: anyone can join this "
            "cluster's peer traffic; set RAFT3D_CLUSTER_SECRET for anything but a local demo"
        )
    try:
        _prepare_data_dir(settings.data_dir)
    except OSError as exc:
        print(f"raft3d: cannot use data dir {settings.data_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    plan = joining.plan_for(args.join, settings.data_dir, args.token, args.join_timeout)
    if args.join:
        # The node side of --join: a blank data dir starts as a non-member that waits for a
        # leader to add it (the node ignores it once the data dir holds an identity).
        settings = dataclasses.replace(settings, joining=True)
    import uvloop

    # The process serves from here on, before any thread or state exists: the collector's
    # passes bounded (node.heap), malloc's arenas capped (node.native_heap), the young
    # generation's threshold and the GIL's hand-over (raft3d.runtime), and what start-up
    # built (modules, schemas, settings) out of the collector's walks.
    tune_collector()
    limit_arenas()
    runtime.tune_for_serving()
    gc.freeze()
    try:
        fronts = front_command(args.config, args.data_dir, console_level)
        return uvloop.run(run_node(settings, tls, plan, fronts))
    except BindError as exc:
        print(f"raft3d: {exc}", file=sys.stderr)
        return 2


class BindError(Exception):
    """The node cannot start: a listening address cannot be bound (in use, not local, no
    permission), or its data directory cannot be opened (e.g. another node holds it)."""


# File descriptors kept back from HTTP connections: the Raft port, peer links, the log
# database and its journal, snapshot files, log files.
FD_RESERVE = 64


def _prepare_data_dir(data_dir: Path) -> None:
    """Everything the node writes is for this user only: dirs 0700, files 0600."""
    os.umask(0o077)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d: %s", soft, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, fd_limit: int) -> int:
    """Connections the node may hold open: a forwarded write holds a second descriptor (the
    request to the leader), so each connection may cost two, beside the reserve."""
    return max(1, min(configured, (fd_limit - FD_RESERVE) // 2))


async def run_node(
    settings: Settings,
    tls: TlsContexts | None = None,
    join: joining.JoinPlan | None = None,
    fronts_command: Sequence[str] | None = None,
) -> int:
    """Run a node until SIGTERM or SIGINT (then answer in-flight requests, close cleanly and
    return 0) or until it halts (then close and return ``EXIT_HALTED``).

    With ``join``, once the node serves, it asks the cluster to add it; if the cluster
    refuses, or does not answer in time, the node stops and this returns 2.

    SIGHUP re-reads the TLS certificate files (a bad set is refused and the old one kept).

    With ``http.workers`` > 0 and ``fronts_command``, that many HTTP fronts share the port.
    """
    halted = asyncio.Event()
    http = settings.http_settings
    fd_limit = raise_fd_limit()
    cap = connection_cap(http.max_connections, fd_limit)
    if cap < http.max_connections:
        log.warning(
            "http.max_connections lowered from %d to %d to stay below the open-files limit %d",
            http.max_connections,
            cap,
            fd_limit,
        )
    guard = ConnectionGuard(
        settings.node_id, max_connections=cap, header_timeout_s=http.header_timeout_s
    )
    lag = LoopLagMonitor()
    guard.on_activity = lag.poke
    try:
        # Opens (and locks) the data directory.
        app = build_app(settings, tls, lag, on_halt=lambda _exc: halted.set())
    except (OSError, StorageError) as exc:
        raise BindError(f"cannot start node {settings.node_id}: {exc}") from None
    app[GUARD_KEY] = guard  # serving_middleware stops its head clock: no middleware more
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=http.keepalive_timeout_s,
        shutdown_timeout=http.request_timeout_s,
    )
    lag.start()
    try:
        await _start_listening(settings, runner, guard, tls)
    except BaseException:
        lag.stop()
        raise
    log.info(
        "http listening node=%s addr=%s advertised=%s://%s max_connections=%d "
        "header_timeout_s=%g keepalive_timeout_s=%g fd_limit=%d",
        settings.node_id,
        settings.http,
        settings.http_scheme,
        settings.public_http,
        cap,
        http.header_timeout_s,
        http.keepalive_timeout_s,
        fd_limit,
    )
    fronts = None
    if http.workers and fronts_command:
        fronts = Fronts(app, settings.data_dir, http.workers, fronts_command)
        await fronts.start(runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_tls, tls, fronts)
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(halted.wait())]
    join_failed: list[str] = []
    if join is not None:
        me = joining.JoinRequest(
            settings.node_id, str(settings.public_raft), api_options(settings).own_url
        )
        client_ssl = tls.http_client if tls else None
        # Beside the waits, not among them: a join that succeeds leaves the node running.
        joiner = joining.join_or_stop(join, me, client_ssl, stop, join_failed)
        background = [asyncio.ensure_future(joiner)]
    else:
        background = []
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
        for wait in waits + background:
            wait.cancel()
        if fronts is not None:  # first: their requests in flight need the node
            await fronts.stop(http.request_timeout_s + 1)
        await runner.cleanup()  # stops listening, waits for handlers, then stops the node
        lag.stop()
    if join_failed:
        print(f"raft3d: {join_failed[0]}", file=sys.stderr)
        return 2
    return EXIT_HALTED if halted.is_set() else 0


def _reload_tls(tls: TlsContexts | None, fronts: Fronts | None = None) -> None:
    if fronts is not None:
        fronts.send_signal(signal.SIGHUP)  # each front reloads its own copy
    if tls is None:
        log.info("SIGHUP: TLS is off, nothing to reload")
        return
    try:
        tls.reload()
    except SecurityConfigError as exc:
        log.error("SIGHUP: TLS reload refused, keeping the current certificates: %s", exc)
    else:
        log.info("SIGHUP: TLS certificates reloaded")


async def _start_listening(
    settings: Settings,
    runner: web.AppRunner,
    guard: ConnectionGuard,
    tls: TlsContexts | None = None,
) -> None:
    """Start the node (it binds the Raft port) and the HTTP listener; a bind failure becomes
    a BindError naming the address, after whatever did start is stopped again."""
    try:
        await runner.setup()
    except (OSError, StorageError) as exc:
        await runner.cleanup()
        if isinstance(exc, OSError) and exc.errno in _BIND_ERRNOS:
            raise BindError(_bind_problem("raft", settings.raft, exc)) from None
        raise BindError(f"cannot start node {settings.node_id}: {exc}") from None
    http = settings.http_settings
    site: web.BaseSite = GuardedSite(
        runner,
        settings.http.host,
        settings.http.port,
        guard,
        ssl_context=tls.http_server if tls else None,
        reuse_port=http.workers > 0,
    )
    if http.workers > 0 and not http.node_listens:  # only the fronts accept connections
        site = ReservedPort(runner, settings.http.host, settings.http.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise BindError(_bind_problem("http", settings.http, exc)) from None


_BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _bind_problem(what: str, address: object, exc: OSError) -> str:
    reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
    return f"cannot listen on node.{what} {address}: {reason}"


def build_app(
    settings: Settings,
    tls: TlsContexts | None = None,
    lag: LoopLagMonitor | None = None,
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
    collectors = [NodeCollector(node)] + ([lag.histogram] if lag is not None else [])
    app = create_app(
        api_options(settings),
        node,
        state,
        collectors=collectors,
        client_ssl=tls.http_client if tls else None,
    )

    async def node_lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.stop()

    app.cleanup_ctx.insert(0, node_lifecycle)
    return app


if __name__ == "__main__":
    sys.exit(main())
