"""Crash-only halts (issue 8, item 6; SPEC §7): a node that halts on a disk error or an entry
it cannot apply answers 503 from /healthz, /readyz and local reads until it exits, and the
``raft3d serve`` process exits non-zero with a critical log line."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from raft3d.cli import EXIT_HALTED
from raft3d.consensus.types import EntryType
from raft3d.domain.results import Result
from raft3d.node.driver import RaftNode
from raft3d.storage.errors import StorageError
from tests.support.fakes import serve_single_voter
from tests.support.procs import ProcessCluster, http_json
from tests.support.waiting import eventually

Client = TestClient[web.Request, web.Application]
PRINTER = {"id": "p1", "company": "Creality", "model": "Ender 3"}


@pytest.fixture
async def node_and_client(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> tuple[RaftNode[Result], Client]:
    return await serve_single_voter(aiohttp_client, tmp_path)


async def test_a_node_halted_by_a_disk_error_answers_503_and_serves_no_stale_reads(
    node_and_client: tuple[RaftNode[Result], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, client = node_and_client
    assert (await client.post("/api/v1/printers", json=PRINTER)).status == 201
    assert (await client.get("/healthz")).status == 200
    halts: list[BaseException] = []
    node.halt_listeners.append(halts.append)

    def failing_persist(*_args: object) -> None:
        raise StorageError("persist failed: disk I/O error")

    monkeypatch.setattr(node.storage, "persist", failing_persist)
    refused = await client.post("/api/v1/printers", json={**PRINTER, "id": "p2"})
    assert refused.status == 503
    await eventually(lambda: node.halted is not None, 10, "the node to halt")
    assert len(halts) == 1 and isinstance(halts[0], StorageError)
    for path in (
        "/healthz",
        "/readyz",
        "/api/v1/printers?consistency=local",
        "/api/v1/print_jobs?consistency=local",
        "/api/v1/events?consistency=local",
        "/api/v1/printers",
    ):
        response = await client.get(path)
        body = await response.json()
        assert response.status == 503, (path, body)
        assert body["error"]["code"] in ("halted", "unavailable"), (path, body)
    health = await (await client.get("/healthz")).json()
    assert health["error"]["code"] == "halted"
    assert "disk I/O error" in health["error"]["details"]["reason"]


def test_a_serve_process_exits_non_zero_on_an_entry_it_cannot_apply(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, 1) as cluster:
        (node,) = cluster.nodes.values()
        node.start()
        cluster.wait_for_leader(timeout=15)
        code, body, _ = http_json("POST", f"{node.url}/api/v1/printers", PRINTER)
        assert code == 201, body
        assert node.terminate() == 0
        # An entry this version cannot decode, as if written by a faulty or newer node.
        with sqlite3.connect(node.data_dir / "raft.db") as db:
            newest = "SELECT idx, term FROM log_entries ORDER BY idx DESC"
            (last, term) = db.execute(newest).fetchone()
            db.execute(
                "INSERT INTO log_entries VALUES (?, ?, ?, ?)",
                (last + 1, term, int(EntryType.NORMAL), b"\xc1 not a command"),
            )
        node.start()
        assert node.proc is not None
        try:
            returncode = node.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the halted node did not exit:\n{node.log_tail()}")
        log = node.log_path.read_text()
        assert returncode == EXIT_HALTED, log
        assert 'level=critical logger=raft3d.node msg="node halted' in log, log
        assert "exiting with status 3" in log, log
        # Restarted by its supervisor, it halts again rather than skip the entry.
        node.start()
        assert node.proc.wait(timeout=30) == EXIT_HALTED
