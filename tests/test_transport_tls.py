"""Mutual TLS between peers: only certificates from the cluster CA, naming the right node."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from raft3d.consensus.types import Message, MsgType
from raft3d.security.certs import NodeSpec, make_demo_pki
from raft3d.security.settings import SecurityConfigError, TlsSettings
from raft3d.security.tls import TlsContexts
from raft3d.transport import Transport, stats, wire
from tests.support.waiting import eventually

LOCAL = "127.0.0.1"
SECRET = b"transport-tls-test-secret"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    make_demo_pki(out, [NodeSpec("n1", (LOCAL,)), NodeSpec("n2", (LOCAL,))])
    make_demo_pki(out / "other", [NodeSpec("n2", (LOCAL,))])  # a CA the cluster does not know
    return out


def contexts(pki: Path, node_id: str, *, cert_dir: Path | None = None) -> TlsContexts:
    d = cert_dir or pki
    return TlsContexts(
        TlsSettings(ca=d / "ca.pem", cert=d / f"{node_id}.pem", key=d / f"{node_id}-key.pem"),
        node_id,
    )


def ping(frm: str, to: str) -> Message:
    return Message(MsgType.HEARTBEAT, to=to, frm=frm, term=1)


@contextlib.asynccontextmanager
async def transport(
    node_id: str, peer: str, peer_port: int, tls: TlsContexts | None, inbox: list[Message]
) -> AsyncIterator[Transport]:
    t = Transport(
        node_id,
        (LOCAL, 0),
        {peer: (LOCAL, peer_port)},
        SECRET,
        inbox.append,
        ssl_server=tls.peer_server if tls else None,
        ssl_client=tls.peer_client if tls else None,
        backoff_max=0.1,
    )
    await t.start()
    try:
        yield t
    finally:
        await t.stop()


async def test_peers_with_cluster_certificates_exchange_messages(pki: Path) -> None:
    inbox1: list[Message] = []
    inbox2: list[Message] = []
    async with (
        transport("n1", "n2", 1, contexts(pki, "n1"), inbox1) as t1,
        transport("n2", "n1", t1.port, contexts(pki, "n2"), inbox2) as t2,
    ):
        t1.set_peer_address("n2", (LOCAL, t2.port))
        t1.send(ping("n1", "n2"))
        t2.send(ping("n2", "n1"))
        await eventually(lambda: bool(inbox1 and inbox2), what="a message each way")
    assert inbox1[0].frm == "n2"
    assert inbox2[0].frm == "n1"


async def test_a_client_without_a_certificate_is_refused_before_the_raft_handshake(
    pki: Path,
) -> None:
    inbox: list[Message] = []
    async with transport("n1", "n2", 1, contexts(pki, "n1"), inbox) as t1:
        no_cert = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        no_cert.load_verify_locations(pki / "ca.pem")
        no_cert.check_hostname = False
        # TLS 1.3 servers ask for the client certificate after the client's handshake is
        # done, so the refusal shows on the first read.
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection(LOCAL, t1.port, ssl=no_cert)
            writer.write(wire.encode_hello("n2", b"\0" * wire.NONCE_BYTES))
            await writer.drain()
            await reader.readexactly(4)  # a challenge would mean the hello reached Raft
        # Plain TCP gets nowhere either: the hello is not TLS, the connection just closes.
        reader, writer = await asyncio.open_connection(LOCAL, t1.port)
        writer.write(wire.encode_hello("n2", b"\0" * wire.NONCE_BYTES))
        try:
            answer = await reader.read(100)
        except ConnectionResetError:
            answer = b""
        writer.close()
        assert answer == b"" or not answer.startswith(b"\0\0")  # no challenge frame
    assert inbox == []
    assert t1.stats.dropped[stats.AUTH_FAILED] == 0  # refused by TLS, not by our handshake


async def test_a_certificate_from_another_ca_cannot_join(pki: Path) -> None:
    inbox1: list[Message] = []
    inbox2: list[Message] = []
    outsider = contexts(pki, "n2", cert_dir=pki / "other")
    async with (
        transport("n1", "n2", 1, contexts(pki, "n1"), inbox1) as t1,
        transport("n2", "n1", t1.port, outsider, inbox2) as t2,
    ):
        t2.send(ping("n2", "n1"))
        await eventually(lambda: t2.stats.dropped[stats.AUTH_FAILED] >= 1, what="the refusal")
        assert not t2.reachable("n1")
    assert inbox1 == []


async def test_a_certificate_must_name_the_node_that_presents_it(pki: Path) -> None:
    inbox1: list[Message] = []
    inbox2: list[Message] = []
    # n2 claims to be n2 but holds n1's certificate: valid CA, wrong name.
    impostor = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    impostor.check_hostname = False
    impostor.load_verify_locations(pki / "ca.pem")
    impostor.load_cert_chain(pki / "n1.pem", pki / "n1-key.pem")
    server_ctx = contexts(pki, "n2").peer_server
    async with transport("n1", "n2", 1, contexts(pki, "n1"), inbox1) as t1:
        t2 = Transport(
            "n2",
            (LOCAL, 0),
            {"n1": (LOCAL, t1.port)},
            SECRET,
            inbox2.append,
            ssl_server=server_ctx,
            ssl_client=impostor,
            backoff_max=0.1,
        )
        await t2.start()
        try:
            t2.send(ping("n2", "n1"))
            await eventually(
                lambda: t1.stats.dropped[stats.AUTH_FAILED] >= 1, what="the name check"
            )
        finally:
            await t2.stop()
    assert inbox1 == []


def test_transport_needs_both_tls_sides(pki: Path) -> None:
    tls = contexts(pki, "n1")
    with pytest.raises(ValueError, match="both"):
        Transport("n1", (LOCAL, 0), {}, SECRET, lambda m: None, ssl_server=tls.peer_server)


async def served_certificate(port: int, pki: Path) -> bytes:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(pki / "ca.pem")
    client.load_cert_chain(pki / "n2.pem", pki / "n2-key.pem")
    _, writer = await asyncio.open_connection(LOCAL, port, ssl=client)
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    assert der is not None
    return bytes(der)


def pem_to_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


async def test_reload_swaps_in_new_files_and_refuses_a_bad_set(pki: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    shutil.copytree(pki, live)
    tls = contexts(pki, "n1", cert_dir=live)
    async with transport("n1", "n2", 1, tls, []) as t1:
        assert await served_certificate(t1.port, pki) == pem_to_der(pki / "n1.pem")
        make_demo_pki(live, [NodeSpec("n1", (LOCAL,))])  # same CA, a fresh n1 key and cert
        tls.reload()
        renewed = pem_to_der(live / "n1.pem")
        assert renewed != pem_to_der(pki / "n1.pem")
        assert await served_certificate(t1.port, pki) == renewed
        # A key that belongs to another certificate: refused, and the live contexts keep
        # serving what they had.
        shutil.copy(live / "n2-key.pem", live / "n1-key.pem")
        with pytest.raises(SecurityConfigError, match="does not match"):
            tls.reload()
        assert await served_certificate(t1.port, pki) == renewed
