"""HTTP limits against real node processes (SPEC §7, issue 8).

Findings reproduced: slowloris and idle keep-alive connections stayed open (no header timeout,
keep-alive 3,630 s); no connection cap; with connections held up to the fd limit the node
refused everything and logged nothing; a follower answered 500 to an absolute-form target; a
write that timed out was reported as "leadership changed".
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

GET_STATUS = b"GET /cluster/status HTTP/1.1\r\nHost: node\r\n\r\n"


def connect(node: NodeProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.http_port), timeout=10)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (fails at the deadline)."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the connection open for {timeout} s; got {data!r}")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(fields.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return status, fields, body


def refused_connections(
    socks: list[socket.socket], count: int, timeout: float
) -> set[socket.socket]:
    """Wait until ``count`` of ``socks`` were answered 503 and closed by the server."""
    deadline = time.monotonic() + timeout
    buffers: dict[socket.socket, bytes] = {}
    closed: set[socket.socket] = set()
    while len(closed) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(closed)} of {count} connections were refused"
        ready, _, _ = select.select([s for s in socks if s not in closed], [], [], remaining)
        for sock in ready:
            chunk = sock.recv(65536)
            if chunk:
                buffers[sock] = buffers.get(sock, b"") + chunk
                continue
            closed.add(sock)
            status, _, body = parse(buffers.get(sock, b""))
            assert status == 503 and body["error"]["code"] == "too_many_connections"
    return closed


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), fields, json.loads(body)


def single(tmp_path: Path, http: dict[str, Any], **kw: Any) -> ProcessCluster:
    return ProcessCluster(tmp_path, 1, tables={"http": http}, **kw)


@pytest.fixture
def strict_node(tmp_path: Path) -> Iterator[NodeProcess]:
    # The keep-alive limit is the longer one, so a slow head meets the header timeout first.
    http = {"header_timeout_s": 1.0, "keepalive_timeout_s": 3.0, "max_connections": 8}
    with single(tmp_path, http) as cluster:
        cluster.start()
        cluster.wait_for_leader(timeout=30)
        yield cluster.nodes["n1"]
        print(cluster.logs())


def test_slowloris_connections_are_closed_after_the_header_timeout(
    strict_node: NodeProcess,
) -> None:
    socks = [connect(strict_node) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(b"GET /cluster/status HTTP/1.1\r\nHost: node\r\n")
        # Still trickling headers: each one arrives well within any per-read timeout.
        for i in range(3):
            for sock in socks:
                sock.sendall(f"X-Slow-{i}: y\r\n".encode())
            time.sleep(0.2)  # the client's pace, not synchronisation
        for sock in socks:
            status, fields, body = parse(read_until_closed(sock, 10))
            assert status == 408
            assert fields["content-type"].startswith("application/json")
            assert body["error"]["code"] == "header_timeout"
    finally:
        for sock in socks:
            sock.close()
    assert http_json("GET", f"{strict_node.url}/cluster/status")[0] == 200


def test_idle_keep_alive_connections_are_closed(strict_node: NodeProcess) -> None:
    sock = connect(strict_node)
    try:
        sock.sendall(GET_STATUS)
        status, fields, _ = read_response(sock)
        assert status == 200 and fields.get("connection", "").lower() != "close"
        assert read_until_closed(sock, 10) == b""  # idle past keepalive_timeout_s: closed
    finally:
        sock.close()


def test_a_request_that_completes_its_head_in_time_is_not_cut(strict_node: NodeProcess) -> None:
    sock = connect(strict_node)
    try:
        for _ in range(3):  # several requests on one connection, each well within the limits
            sock.sendall(GET_STATUS)
            status, _, body = read_response(sock)
            assert status == 200 and json.loads(body)["node_id"] == "n1"
    finally:
        sock.close()


def test_each_head_on_a_keep_alive_connection_gets_its_own_full_header_timeout(
    strict_node: NodeProcess,
) -> None:
    # The head timer is not cancelled when a request starts; one armed by the first head
    # fires while the second is pending and must give that head what is left of its own
    # second, then cut it: not at the first head's deadline, and not never.
    sock = connect(strict_node)
    try:
        sock.sendall(GET_STATUS)
        assert read_response(sock)[0] == 200
        time.sleep(0.6)  # the client's pace: the next head starts 0.6 s into the first timer
        began = time.monotonic()
        sock.sendall(b"GET /cluster/status HTTP/1.1\r\n")
        status, _, body = parse(read_until_closed(sock, 10))
        waited = time.monotonic() - began
        assert status == 408 and body["error"]["code"] == "header_timeout"
        assert waited >= 0.9, f"cut {waited:.2f} s after its first byte (limit 1 s)"
    finally:
        sock.close()


def test_a_body_slower_than_the_header_timeout_is_not_cut_once_its_head_is_in(
    strict_node: NodeProcess,
) -> None:
    # The head clock stops when the app starts handling the request (the node app's one
    # middleware stops it): reading a slow body is the handler's business, not a slowloris.
    body = json.dumps({"id": "slow-body", "company": "Acme", "model": "M1"}).encode()
    head = (
        "POST /api/v1/printers HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = connect(strict_node)
    try:
        sock.sendall(head)
        pieces = [body[i : i + 10] for i in range(0, len(body), 10)]
        pace = 1.6 / len(pieces)  # the body takes 1.6 s, past the 1 s header timeout
        for piece in pieces:
            time.sleep(pace)  # the client's pace, not synchronisation
            sock.sendall(piece)
        status, _, answer = read_response(sock)
        assert status == 201, answer
        assert json.loads(answer)["id"] == "slow-body"
        sock.sendall(GET_STATUS)  # and the connection still serves the next request
        assert read_response(sock)[0] == 200
    finally:
        sock.close()


def test_connections_over_the_cap_get_503_json_and_the_node_recovers(
    tmp_path: Path,
) -> None:
    http = {"header_timeout_s": 30.0, "keepalive_timeout_s": 60.0, "max_connections": 5}
    with single(tmp_path, http) as cluster:
        cluster.start()
        cluster.wait_for_leader(timeout=30)
        node = cluster.nodes["n1"]
        held = [connect(node) for _ in range(5)]
        try:
            for sock in held:  # each admitted: it gets an answer and stays open
                sock.sendall(GET_STATUS)
                assert read_response(sock)[0] == 200
            for _ in range(6):
                extra = connect(node)
                try:
                    extra.sendall(GET_STATUS)
                    status, fields, body = parse(read_until_closed(extra, 10))
                finally:
                    extra.close()
                assert status == 503
                assert fields["connection"] == "close" and fields["retry-after"] == "1"
                assert body["error"]["code"] == "too_many_connections"
        finally:
            for sock in held:
                sock.close()
        wait_until(
            lambda: http_json("GET", f"{node.url}/cluster/status")[0] == 200,
            10,
            "the node to answer again",
        )
        log = node.log_path.read_text()
        refusals = [line for line in log.splitlines() if "http connection refused" in line]
        assert len(refusals) == 1, refusals  # six refusals, one line per interval
        assert "limit=5" in refusals[0]


def test_connections_held_up_to_the_fd_limit_leave_the_node_logging_and_recovering(
    tmp_path: Path,
) -> None:
    # A hard limit of 256 open files: the node caps HTTP connections well below it.
    command = ["prlimit", "--nofile=256:256", sys.executable, "-m", "raft3d", "serve"]
    http = {"header_timeout_s": 30.0, "keepalive_timeout_s": 60.0}
    with single(tmp_path, http, command=command) as cluster:
        cluster.start()
        cluster.wait_for_leader(timeout=30)
        node = cluster.nodes["n1"]
        log = node.log_path.read_text()
        assert "http.max_connections lowered from 1000 to 96" in log
        held: list[socket.socket] = []
        try:
            for _ in range(300):  # more than the fd limit, all open at once
                held.append(connect(node))
            # The connections over the cap are answered at once, without sending anything.
            refused = refused_connections(held, 300 - 96, timeout=30)
            for sock in held:
                if sock not in refused:
                    sock.sendall(GET_STATUS)
                    assert read_response(sock)[0] == 200
            assert wait_until(
                lambda: "http connection refused" in node.log_path.read_text(), 10, "a log line"
            )
        finally:
            for sock in held:
                sock.close()
        wait_until(
            lambda: http_json("GET", f"{node.url}/cluster/status")[0] == 200,
            10,
            "the node to answer again",
        )
        assert node.status()["role"] == "leader"
        code, _, _ = http_json(
            "POST",
            f"{node.url}/api/v1/printers",
            {"id": "after-flood", "company": "Prusa", "model": "MK4"},
        )
        assert code == 201


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3, raft={"check_quorum": False}) as c:
        c.start()
        yield c
        print(c.logs())


def test_absolute_form_target_on_a_follower_is_forwarded_not_500_and_timeouts_say_timeout(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=30)
    follower = next(n for n in cluster.alive() if n is not leader)
    body = json.dumps({"id": "abs", "company": "Creality", "model": "Ender 3"}).encode()
    sock = connect(follower)
    try:
        sock.sendall(
            b"POST http://x/api/v1/printers HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        status, _, answer = read_response(sock)
    finally:
        sock.close()
    assert status == 201, answer
    assert json.loads(answer)["id"] == "abs"

    # Without its followers (and without check-quorum, so it stays leader) the leader cannot
    # commit: the write times out, and says so; leadership did not change.
    term = leader.status()["term"]
    for node in cluster.alive():
        if node is not leader:
            node.kill()
    code, error, headers = http_json(
        "POST",
        f"{leader.url}/api/v1/printers",
        {"id": "late", "company": "Prusa", "model": "MK4"},
        timeout=30,
    )
    assert code == 503, error
    assert error["error"]["code"] == "timeout"
    assert headers["Retry-After"] == "1"
    after = leader.status()
    assert after["role"] == "leader" and after["term"] == term
