"""The Raft3D service end to end: real ``raft3d serve`` processes on loopback."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

API = "/api/v1"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3) as c:
        c.start()
        yield c
        print(c.logs())  # shown only when the test failed


def post(node: NodeProcess, path: str, body: object, **kw: Any) -> tuple[int, Any, dict[str, str]]:
    return http_json("POST", f"{node.url}{API}{path}", body, **kw)


def get(node: NodeProcess, path: str) -> tuple[int, Any, dict[str, str]]:
    return http_json("GET", f"{node.url}{API}{path}")


def farm_state(node: NodeProcess, consistency: str = "local") -> dict[str, Any]:
    out = {}
    for kind in ("printers", "filaments", "print_jobs"):
        code, body, _ = get(node, f"/{kind}?consistency={consistency}")
        assert code == 200, body
        out[kind] = body
    return out


def followers(cluster: ProcessCluster, leader: NodeProcess) -> list[NodeProcess]:
    return [n for n in cluster.alive() if n is not leader]


def test_demo_flow_survives_leader_kill_and_restart(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    printer = {"id": "p1", "company": "Creality", "model": "Ender 3"}
    code, body, headers = post(leader, "/printers", printer)
    assert (code, body) == (201, printer)
    assert headers["X-Raft3D-Node"] == leader.node_id

    leader.kill()
    survivors = cluster.alive()
    new_leader = cluster.wait_for_leader(timeout=10)
    assert new_leader is not leader
    for node in survivors:  # linearizable reads on every survivor
        code, body, _ = get(node, "/printers")
        assert (code, body) == (200, [printer])

    follower = next(n for n in survivors if n is not new_leader)
    code, body, headers = post(follower, "/printers", {"id": 2, "company": "Prusa", "model": "MK4"})
    assert code == 201 and body["id"] == "2"  # forwarded to the leader, integer id stored as text

    leader.start()
    wait_until(lambda: leader.status()["role"] == "follower", 15, "restarted node to follow")
    expected = [printer, {"id": "2", "company": "Prusa", "model": "MK4"}]
    code, body, _ = get(leader, "/printers")
    assert (code, body) == (200, expected)
    wait_until(
        lambda: all(farm_state(n)["printers"] == expected for n in cluster.nodes.values()),
        10,
        "every node to hold both printers locally",
    )


def test_business_rules_through_any_node(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    f1, f2 = followers(cluster, leader)

    assert post(f1, "/printers", {"id": "p", "company": "Bambu", "model": "X1"})[0] == 201
    # Rule 1: duplicate id, through another node.
    code, body, _ = post(f2, "/printers", {"id": "p", "company": "Bambu", "model": "X1"})
    assert code == 409 and body["error"]["code"] == "duplicate_id"

    code, body, _ = post(
        f2,
        "/filaments",
        {
            "id": "f",
            "type": "pla",
            "color": "red",
            "total_weight_in_grams": 1000,
            "remaining_weight_in_grams": 300,
        },
    )
    assert code == 201 and body["type"] == "PLA"
    # Unknown references: 422.
    code, body, _ = post(
        f1,
        "/print_jobs",
        {
            "printer_id": "nope",
            "filament_id": "f",
            "filepath": "a.gcode",
            "print_weight_in_grams": 10,
        },
    )
    assert code == 422 and body["error"]["code"] == "unknown_printer"
    code, body, _ = post(
        f1,
        "/print_jobs",
        {
            "printer_id": "p",
            "filament_id": "nope",
            "filepath": "a.gcode",
            "print_weight_in_grams": 10,
        },
    )
    assert code == 422 and body["error"]["code"] == "unknown_filament"

    # Rule 2: reservations of Queued/Running jobs count against the remaining weight.
    job = {"printer_id": "p", "filament_id": "f", "filepath": "prints/a.gcode"}
    code, j1, _ = post(f1, "/print_jobs", {**job, "id": "j1", "print_weight_in_grams": 200})
    assert code == 201 and j1["status"] == "Queued"
    code, body, _ = post(f2, "/print_jobs", {**job, "id": "j2", "print_weight_in_grams": 101})
    assert code == 409 and body["error"]["code"] == "insufficient_filament"
    code, _, _ = post(f2, "/print_jobs", {**job, "id": "j2", "print_weight_in_grams": 100})
    assert code == 201

    # Rule 3: transitions. Rule 4: Done reduces the roll.
    code, body, _ = post(f1, "/print_jobs/j1/status?status=done", None)
    assert code == 409 and body["error"]["code"] == "illegal_transition"
    code, body, _ = post(f1, "/print_jobs/j1/status?status=RUNNING", None)
    assert (code, body["status"]) == (200, "Running")
    code, body, _ = http_json("PUT", f"{f2.url}{API}/print_jobs/j1/status", {"status": "done"})
    assert (code, body["status"]) == (200, "Done")
    code, body, _ = post(f2, "/print_jobs/j1/status", {"status": "cancelled"})
    assert code == 409 and body["error"]["code"] == "illegal_transition"
    code, body, _ = post(f1, "/print_jobs/j2/status?status=canceled", None)
    assert (code, body["status"]) == (200, "Cancelled")
    code, body, _ = post(f1, "/print_jobs/missing/status?status=running", None)
    assert code == 404 and body["error"]["code"] == "job_not_found"

    code, filaments, _ = get(f2, "/filaments")
    assert filaments[0]["remaining_weight_in_grams"] == 100
    code, queued, _ = get(f1, "/print_jobs?status=queued")
    assert (code, queued) == (200, [])
    code, done, _ = get(f1, "/print_jobs?status=Done")
    assert [j["id"] for j in done] == ["j1"]
    states = [farm_state(n, "linearizable") for n in cluster.alive()]
    assert states[0] == states[1] == states[2]


async def test_twenty_concurrent_jobs_on_one_roll_exactly_ten_accepted(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    assert post(leader, "/printers", {"id": "p", "company": "Prusa", "model": "MK4"})[0] == 201
    assert (
        post(
            leader,
            "/filaments",
            {"id": "roll", "type": "PETG", "color": "black", "total_weight_in_grams": 1000},
        )[0]
        == 201
    )
    nodes = list(cluster.nodes.values())
    async with aiohttp.ClientSession() as session:

        async def create(i: int) -> int:
            body = {
                "printer_id": "p",
                "filament_id": "roll",
                "filepath": f"job{i}.gcode",
                "print_weight_in_grams": 100,
            }
            url = f"{nodes[i % 3].url}{API}/print_jobs"
            async with session.post(url, json=body) as resp:
                return resp.status

        statuses = await asyncio.gather(*(create(i) for i in range(20)))
    assert sorted(statuses) == [201] * 10 + [409] * 10
    for node in nodes:
        code, jobs, _ = get(node, "/print_jobs")
        assert code == 200 and len(jobs) == 10


BAD_INPUTS: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
    ("POST", "/printers", b"{not json", {"Content-Type": "application/json"}, 400),
    ("POST", "/printers", b"[1, 2]", {"Content-Type": "application/json"}, 400),
    ("POST", "/printers", b'{"company": 5, "model": "x"}', {}, 400),
    ("POST", "/printers", b'{"company": "a", "model": "b", "colour": "x"}', {}, 400),
    ("POST", "/printers", b'{"id": "' + b"x" * 129 + b'", "company": "a", "model": "b"}', {}, 400),
    ("POST", "/printers", b'{"company": "' + b"x" * 257 + b'", "model": "b"}', {}, 400),
    ("POST", "/printers", b'{"company": "", "model": "b"}', {}, 400),
    ("POST", "/filaments", b'{"type": "wood", "color": "r", "total_weight_in_grams": 1}', {}, 400),
    ("POST", "/filaments", b'{"type": "PLA", "color": "r", "total_weight_in_grams": -1}', {}, 400),
    (
        "POST",
        "/filaments",
        b'{"type": "PLA", "color": "r", "total_weight_in_grams": 1e99}',
        {},
        400,
    ),
    (
        "POST",
        "/filaments",
        b'{"type": "PLA", "color": "r", "total_weight_in_grams": 99999999999999999999999}',
        {},
        400,
    ),
    (
        "POST",
        "/filaments",
        b'{"type": "PLA", "color": "r", "total_weight_in_grams": "10"}',
        {},
        400,
    ),
    (
        "POST",
        "/filaments",
        b'{"type": "PLA", "color": "r", "total_weight_in_grams": true}',
        {},
        400,
    ),
    (
        "POST",
        "/filaments",
        b'{"type": "PLA", "color": "r", "total_weight_in_grams": 10,'
        b' "remaining_weight_in_grams": 11}',
        {},
        400,
    ),
    (
        "POST",
        "/print_jobs",
        b'{"printer_id": "p", "filament_id": "f", "filepath": "a",'
        b' "print_weight_in_grams": 1, "status": "Done"}',
        {},
        400,
    ),
    (
        "POST",
        "/print_jobs",
        b'{"printer_id": "p", "filament_id": "f", "filepath": "a", "print_weight_in_grams": 0}',
        {},
        400,
    ),
    ("POST", "/print_jobs/j/status?status=flying", None, {}, 400),
    ("GET", "/print_jobs?status=flying", None, {}, 400),
    ("GET", "/printers?consistency=sometimes", None, {}, 400),
    ("POST", "/printers", b'{"company": "' + b"x" * (1024 * 1024 + 10) + b'"}', {}, 413),
    ("GET", "/nothing-here", None, {}, 404),
    ("DELETE", "/printers", None, {}, 405),
    ("PATCH", "/print_jobs/j/status", None, {}, 405),
]


def raw_request(
    node: NodeProcess, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, Any]:
    req = urllib.request.Request(f"{node.url}{API}{path}", data=body, method=method)
    if body is not None and "Content-Type" not in headers:
        req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_bad_inputs_get_a_clear_4xx_and_change_nothing(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    follower = followers(cluster, leader)[0]
    assert post(leader, "/printers", {"id": "p", "company": "Prusa", "model": "MK4"})[0] == 201
    assert (
        post(
            leader,
            "/filaments",
            {"id": "f", "type": "PLA", "color": "r", "total_weight_in_grams": 100},
        )[0]
        == 201
    )
    assert (
        post(
            leader,
            "/print_jobs",
            {
                "id": "j",
                "printer_id": "p",
                "filament_id": "f",
                "filepath": "a",
                "print_weight_in_grams": 10,
            },
        )[0]
        == 201
    )
    before = farm_state(leader, "linearizable")
    applied_before = leader.status()["applied_index"]
    for node in (leader, follower):
        for method, path, body, headers, expected in BAD_INPUTS:
            code, answer = raw_request(node, method, path, body, headers)
            assert code == expected, (
                node.node_id,
                method,
                path,
                body[:80] if body else None,
                answer,
            )
            assert set(answer) == {"error"} and {"code", "message"} <= set(answer["error"])
    assert farm_state(leader, "linearizable") == before
    assert leader.status()["applied_index"] == applied_before  # nothing was even proposed


def test_five_nodes_survive_two_failures_including_the_leader(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, 5) as cluster:
        cluster.start()
        try:
            leader = cluster.wait_for_leader(timeout=20)
            assert post(leader, "/printers", {"id": "p1", "company": "A", "model": "B"})[0] == 201
            other = next(n for n in cluster.alive() if n is not leader)
            leader.kill()
            other.kill()
            rest = cluster.alive()
            assert len(rest) == 3
            new_leader = cluster.wait_for_leader(timeout=15)
            for i, node in enumerate(rest):
                code, _, _ = post(node, "/printers", {"id": f"q{i}", "company": "A", "model": "B"})
                assert code == 201
            for node in rest:
                code, body, _ = get(node, "/printers")
                assert code == 200 and [p["id"] for p in body] == ["p1", "q0", "q1", "q2"]
            assert new_leader in rest
        finally:
            print(cluster.logs())


def test_sigterm_shuts_down_cleanly(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    follower = followers(cluster, leader)[0]
    assert post(follower, "/printers", {"id": "p", "company": "A", "model": "B"})[0] == 201
    assert follower.terminate() == 0
    assert "node stopped" in follower.log_tail(200)
    follower.start()
    wait_until(lambda: follower.status()["role"] == "follower", 15, "restarted follower")
    code, body, _ = get(follower, "/printers")
    assert code == 200 and [p["id"] for p in body] == ["p"]
