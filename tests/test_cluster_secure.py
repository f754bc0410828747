"""A secured node as a real process on loopback: HTTPS, tokens, and SIGHUP certificate reload."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from raft3d.security.certs import NodeSpec, make_demo_pki
from tests.support.procs import REPO, free_ports, wait_until
from tests.support.secure import SecureNode, bearer, write_configs


class Solo:
    def __init__(self, root: Path) -> None:
        http_port, raft_port = free_ports(2)
        self.node = SecureNode("n1", "127.0.0.1", "127.0.0.1", http_port, raft_port)
        self.config = write_configs(root, [self.node])["n1"]
        self.certs = root / "certs"
        self.log = root / "n1.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "raft3d", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def served_certificate(self) -> bytes:
        context = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        with (
            socket.create_connection(("127.0.0.1", self.node.http_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der

    def ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        code, _ = https_json("GET", f"{self.node.url}/readyz", context)
        return code == 200


def https_json(
    method: str, url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, object]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[Solo]:
    node = Solo(tmp_path)
    node.start()
    try:
        wait_until(node.ready, 20, "the node to serve HTTPS and elect itself")
        yield node
        print(node.log.read_text(errors="replace"))
    finally:
        node.stop()


def pem_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_https_with_tokens(solo: Solo) -> None:
    context = ssl.create_default_context(cafile=str(solo.certs / "ca.pem"))
    url = f"{solo.node.url}/api/v1/printers"
    assert https_json("GET", url, context)[0] == 401
    assert https_json("GET", url, context, bearer("viewer"))[0] == 200
    # The node's certificate is from the cluster CA, which the system does not trust.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        https_json("GET", url, ssl.create_default_context())


def test_sighup_reloads_certificates_and_refuses_a_bad_set(solo: Solo) -> None:
    assert solo.proc is not None
    assert solo.served_certificate() == pem_der(solo.certs / "n1.pem")
    make_demo_pki(solo.certs, [NodeSpec("n1", ("127.0.0.1",))])  # renewed by the same CA
    renewed = pem_der(solo.certs / "n1.pem")
    os.kill(solo.proc.pid, signal.SIGHUP)
    wait_until(lambda: solo.served_certificate() == renewed, 10, "the renewed certificate")

    good_key = solo.certs / "good-key.pem"
    shutil.copy(solo.certs / "n1-key.pem", good_key)
    make_demo_pki(solo.certs / "elsewhere", [NodeSpec("n1", ("127.0.0.1",))])
    shutil.copy(solo.certs / "elsewhere" / "n1-key.pem", solo.certs / "n1-key.pem")
    os.kill(solo.proc.pid, signal.SIGHUP)
    wait_until(
        lambda: "TLS reload refused" in solo.log.read_text(errors="replace"), 10, "the refusal"
    )
    assert "does not match" in solo.log.read_text(errors="replace")
    assert solo.served_certificate() == renewed  # still serving what it had
    assert solo.proc.poll() is None
