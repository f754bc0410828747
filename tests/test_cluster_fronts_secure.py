"""A secured node whose HTTPS connections all land on its front (``workers = 1``,
``node_listens = false``): the front terminates TLS with the node's certificate, checks the
same tokens and roles, and reloads its certificate when the node gets SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from raft3d.security.certs import NodeSpec, make_demo_pki
from tests.support.procs import wait_until
from tests.support.secure import bearer, write_configs
from tests.test_cluster_fronts import children, listening_on
from tests.test_cluster_secure import Solo, https_json, pem_der

FRONTS_ONLY = "\n[http]\nworkers = 1\nnode_listens = false\n"


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[Solo]:
    node = Solo(tmp_path)
    node.config = write_configs(tmp_path, [node.node], raft=FRONTS_ONLY)["n1"]
    node.start()
    try:
        wait_until(node.ready, 30, "the secured node (through its front) to be ready")
        yield node
    finally:
        node.stop()


def _post(solo: Solo, context: ssl.SSLContext, role: str | None, body: str) -> tuple[int, object]:
    headers = {"Content-Type": "application/json", **(bearer(role) if role else {})}
    request = urllib.request.Request(
        f"{solo.node.url}/api/v1/printers", data=body.encode(), method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())["error"]["code"]


def test_the_front_serves_https_with_the_nodes_tokens_and_reloads_on_sighup(solo: Solo) -> None:
    assert solo.proc is not None
    node_pid = solo.proc.pid
    [front] = wait_until(lambda: children(node_pid), 10, "the front")
    assert listening_on(front, solo.node.http_port)
    assert not listening_on(node_pid, solo.node.http_port)
    context = ssl.create_default_context(cafile=str(solo.certs / "ca.pem"))
    body = '{"id": "p1", "company": "Prusa", "model": "MK4"}'
    assert _post(solo, context, None, body) == (401, "unauthenticated")
    assert _post(solo, context, "viewer", body) == (403, "forbidden")
    assert _post(solo, context, "operator", body) == (
        201,
        {"id": "p1", "company": "Prusa", "model": "MK4"},
    )
    code, got = https_json("GET", f"{solo.node.url}/api/v1/printers/p1", context, bearer("viewer"))
    assert (code, got) == (200, {"id": "p1", "company": "Prusa", "model": "MK4"})

    assert solo.served_certificate() == pem_der(solo.certs / "n1.pem")
    make_demo_pki(solo.certs, [NodeSpec("n1", ("127.0.0.1",))])  # renewed by the same CA
    renewed = pem_der(solo.certs / "n1.pem")
    os.kill(solo.proc.pid, signal.SIGHUP)  # the node passes it on to its front
    wait_until(lambda: solo.served_certificate() == renewed, 10, "the front's renewed certificate")
    assert children(node_pid) == [front]  # reloaded in place, not restarted
