"""A Raft node carrying a trivial key-value state machine, with a small HTTP control surface.

It proves the consensus stack (core, storage, transport, driver) on its own, with nothing of
printers in it. Run as ``python -m tests.support.kvnode --config node.toml``.

Control endpoints (on the node's HTTP address):
- ``POST /propose`` body ``{"key": k, "value": v}`` -> ``{"index", "key", "value", "prev"}``,
  or 409 ``{"error": "not_leader", "leader": id}``, 503 ``{"error": "outcome_unknown"}``.
- ``POST /load?n=N&c=C&size=B`` runs N proposals from C concurrent proposers inside this
  process (must be the leader) and returns throughput and commit latency percentiles.
- ``GET /cluster/status``, ``GET /digest``, ``POST /snapshot``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import signal
import time
from collections.abc import Generator
from typing import Any

import msgpack
import uvloop
from aiohttp import web

from raft3d.config import load_settings
from raft3d.consensus.types import SnapshotData
from raft3d.logs import configure_logging
from raft3d.node.driver import RaftNode
from raft3d.node.errors import (
    EntryTooLargeError,
    NodeStoppedError,
    NotLeaderError,
    OutcomeUnknownError,
)
from raft3d.node.wiring import build_node
from tests.support.machines import EagerCapture, KeptOutcomes


class KeyValueStateMachine(KeptOutcomes[dict[str, Any]]):
    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self.last_index = 0

    def apply(self, index: int, data: bytes) -> dict[str, Any]:
        key, value = msgpack.unpackb(data)
        prev = self.data.get(key)
        self.data[key] = value
        self.last_index = index
        result = {"index": index, "key": key, "value": value, "prev": prev}
        self.keep(index, result)
        return result

    def capture(self) -> EagerCapture:
        return EagerCapture(self.snapshot())

    def snapshot(self) -> bytes:
        return msgpack.packb([self.last_index, self.data])  # type: ignore[no-any-return]

    def restore(self, data: bytes) -> None:
        self.last_index, self.data = msgpack.unpackb(data)

    def restorer(self, data: SnapshotData) -> Generator[None, None, None]:
        yield  # one step: a small state
        self.restore(data[0 : len(data)])

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(sorted(self.data.items())).encode()).hexdigest()


def status_json(node: RaftNode[dict[str, Any]]) -> dict[str, Any]:
    s = node.status()
    return {
        "node_id": s.node_id,
        "role": s.role,
        "term": s.term,
        "leader_id": s.leader_id,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_log_index": s.last_log_index,
        "snapshot_index": s.snapshot_index,
        "peers": [
            {"node_id": p.node_id, "reachable": p.reachable, "match_index": p.match_index}
            for p in s.peers
        ],
        "dropped": dict(node.transport.dropped),
    }


def make_app(node: RaftNode[dict[str, Any]], sm: KeyValueStateMachine) -> web.Application:
    routes = web.RouteTableDef()
    seq = itertools.count()

    @routes.post("/propose")
    async def propose(request: web.Request) -> web.Response:
        body = await request.json()
        data = msgpack.packb([body["key"], body["value"]])
        try:
            result = await node.propose(data, timeout=float(body.get("timeout", 5.0)))
        except NotLeaderError as exc:
            return web.json_response({"error": "not_leader", "leader": exc.leader_id}, status=409)
        except OutcomeUnknownError:
            return web.json_response({"error": "outcome_unknown"}, status=503)
        except EntryTooLargeError as exc:
            return web.json_response({"error": "too_large", "message": str(exc)}, status=413)
        except NodeStoppedError:
            return web.json_response({"error": "stopped"}, status=503)
        return web.json_response(result)

    @routes.post("/load")
    async def load(request: web.Request) -> web.Response:
        n = int(request.query.get("n", "1000"))
        c = int(request.query.get("c", "1"))
        size = int(request.query.get("size", "100"))
        if not node.is_leader:
            return web.json_response({"error": "not_leader", "leader": node.leader_id}, status=409)
        batch = next(seq)
        counter = itertools.count()
        latencies: list[float] = []
        errors: dict[str, int] = {}
        value = "x" * size

        async def proposer() -> None:
            while (i := next(counter)) < n:
                started = time.perf_counter()
                try:
                    res = await node.propose(msgpack.packb([f"load-{batch}-{i}", value]))
                    assert isinstance(res, dict) and res["key"] == f"load-{batch}-{i}"
                    latencies.append(time.perf_counter() - started)
                except Exception as exc:  # counted, reported to the benchmark
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(proposer() for _ in range(c)))
        elapsed = time.perf_counter() - started
        latencies.sort()

        def pct(p: float) -> float:
            return (
                latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
                if latencies
                else 0.0
            )

        return web.json_response(
            {
                "n": n,
                "concurrency": c,
                "ok": len(latencies),
                "errors": errors,
                "seconds": elapsed,
                "ops_per_s": len(latencies) / elapsed if elapsed else 0.0,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
            }
        )

    @routes.get("/cluster/status")
    async def cluster_status(request: web.Request) -> web.Response:
        return web.json_response(status_json(node))

    @routes.get("/digest")
    async def digest(request: web.Request) -> web.Response:
        return web.json_response(
            {"digest": sm.digest(), "applied_index": node.applied_index, "keys": len(sm.data)}
        )

    @routes.get("/value/{key}")
    async def value(request: web.Request) -> web.Response:
        return web.json_response({"value": sm.data.get(request.match_info["key"])})

    @routes.post("/snapshot")
    async def snapshot(request: web.Request) -> web.Response:
        return web.json_response({"snapshot_index": await node.take_snapshot()})

    app = web.Application()
    app.add_routes(routes)
    return app


async def serve(config: str) -> None:
    settings = load_settings(config)
    configure_logging(os.environ.get("KVNODE_LOG_LEVEL", "INFO"))
    sm = KeyValueStateMachine()
    node = build_node(settings, sm)
    await node.start()
    runner = web.AppRunner(make_app(node, sm), handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.http.host, settings.http.port, reuse_address=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await node.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.config))


if __name__ == "__main__":
    main()
