"""The node's side of its fronts: the two unix sockets they use, and the processes.

A front that exits while the node runs is started again (after a pause that grows while it
keeps failing). The fronts die with the node: it stops them on its way out, and a front whose
node vanished (SIGKILL) sees its socket close and exits (``raft3d.front.process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from raft3d.api.metrics import ApiMetrics
from raft3d.api.typedefs import METRICS_KEY, NODE_KEY, OPTIONS_KEY, STATE_KEY
from raft3d.front.server import FrontServer, remove_stale

log = logging.getLogger("raft3d.front")

FRONT_SOCKET = "front.sock"  # proposals and counters (raft3d.front.protocol)
HTTP_SOCKET = "http.sock"  # the node's own HTTP app, for what fronts relay
RESTART_DELAY_S = 0.2
MAX_RESTART_DELAY_S = 5.0
# A front that ran this long before it exited was healthy: its restart waits the least.
HEALTHY_RUN_S = 10.0


class Fronts:
    """``count`` front processes running ``command`` (plus ``--index I``) for one node."""

    def __init__(self, app: web.Application, data_dir: Path, count: int, command: Sequence[str]):
        self._app = app
        self._data_dir = data_dir
        self._count = count
        self._command = list(command)
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._server: FrontServer | None = None
        self._site: web.UnixSite | None = None
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.returncode is None]

    @property
    def metrics(self) -> ApiMetrics:
        return self._app[METRICS_KEY]

    async def start(self, runner: web.AppRunner) -> None:
        """Listen on both sockets (the app's runner is set up), then start the fronts."""
        http_path = self._data_dir / HTTP_SOCKET
        remove_stale(http_path)
        self._site = web.UnixSite(runner, str(http_path))
        await self._site.start()
        os.chmod(http_path, 0o600)
        app = self._app
        self._server = FrontServer(app[NODE_KEY], app[STATE_KEY], app[OPTIONS_KEY], self.metrics)
        await self._server.start(self._data_dir / FRONT_SOCKET)
        self._keepers = [asyncio.ensure_future(self._keep(i)) for i in range(self._count)]

    async def stop(self, timeout: float) -> None:
        """Stop the fronts (SIGTERM, then SIGKILL after ``timeout``) and the front socket."""
        self._stopping = True
        for keeper in self._keepers:
            keeper.cancel()
        self.send_signal(signal.SIGTERM)
        waits = [p.wait() for p in self._procs.values() if p.returncode is None]
        if waits:
            _done, pending = await asyncio.wait(
                [asyncio.ensure_future(w) for w in waits], timeout=timeout
            )
            if pending:
                self.send_signal(signal.SIGKILL)
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.close()

    def send_signal(self, sig: int) -> None:
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def _keep(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        delay = RESTART_DELAY_S
        while True:
            started = loop.time()
            proc = await asyncio.create_subprocess_exec(
                *self._command, "--index", str(index), "--node-pid", str(os.getpid())
            )
            self._procs[index] = proc
            log.info("front started index=%d pid=%d", index, proc.pid)
            code = await proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            delay = RESTART_DELAY_S if loop.time() - started > HEALTHY_RUN_S else delay
            log.error(
                "front exited index=%d pid=%d status=%s; restarting in %gs",
                index,
                proc.pid,
                code,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(MAX_RESTART_DELAY_S, delay * 2)


class ReservedPort(web.BaseSite):
    """The client port bound (SO_REUSEPORT) but not listening: with ``http.node_listens``
    false only the fronts accept connections, and the node still holds the port (a process
    that does not share it cannot take it; a bind problem fails the node's start)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._sock: socket.socket | None = None

    @property
    def name(self) -> str:
        return f"reserved://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        family, kind, proto, _, address = socket.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    async def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        await super().stop()


def front_command(config: Path, data_dir: Path | None, log_level: str | None) -> list[str]:
    """The command line of a front for a node started with these ``raft3d serve`` options."""
    command = [sys.executable, "-m", "raft3d.front", "--config", str(config)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    if log_level is not None:
        command += ["--log-level", log_level]
    return command
