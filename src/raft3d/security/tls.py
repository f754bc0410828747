"""TLS contexts for one node, built from the files named in ``[tls]``, reloadable in place.

Peers authenticate each other with certificates signed by the cluster CA, both ways, and a
certificate must name its node (CN = node id): the Raft handshake checks the name against the
node id the peer claims. Clients get the node certificate over HTTPS and authenticate with
tokens, not certificates.

``reload`` re-reads the files (on SIGHUP): it checks them all first and changes nothing if
any is wrong, then loads the new certificate and key into the live contexts, so connections
made from then on use them. A newly added CA is trusted at once; a CA removed from the file
stays trusted until the node restarts (OpenSSL cannot forget a loaded CA).
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from raft3d.security.settings import SecurityConfigError, TlsSettings


@dataclass(frozen=True, slots=True)
class _Checked:
    ca: Path
    cert: Path
    key: Path


def check_files(tls: TlsSettings, node_id: str, http_host: str | None = None) -> None:
    """Raise ``SecurityConfigError`` with one clear line if the files cannot serve this node.

    ``http_host``: the host this node advertises for HTTPS, which clients and forwarding
    peers check against the certificate's alternative names.
    """
    ca_pem = _read(tls.ca, "tls.ca")
    cert_pem = _read(tls.cert, "tls.cert")
    key_pem = _read(tls.key, "tls.key")
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise SecurityConfigError(f"tls.ca: {tls.ca} holds no PEM certificate") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise SecurityConfigError(f"tls.cert: {tls.cert} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise SecurityConfigError(
            f"tls.key: {tls.key} is not an unencrypted PEM private key"
        ) from None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise SecurityConfigError(f"tls.key: {tls.key} does not match tls.cert {tls.cert}")
    if not any(_issued_by(cert, ca) for ca in cas):
        raise SecurityConfigError(f"tls.cert: {tls.cert} is not signed by tls.ca {tls.ca}")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    if common_name != node_id:
        raise SecurityConfigError(
            f"tls.cert: {tls.cert} is for {common_name!r}, but this node is {node_id!r}"
        )
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        raise SecurityConfigError(
            f"tls.cert: {tls.cert} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    if tls.http and http_host is not None and http_host not in _alternative_names(cert):
        raise SecurityConfigError(
            f"tls.cert: {tls.cert} does not name {http_host!r}, the host this node advertises "
            "for HTTPS (make it with `raft3d certs --node ID=HOST,...`)"
        )


def _alternative_names(cert: x509.Certificate) -> set[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    return ips | {dns.lower() for dns in names.get_values_for_type(x509.DNSName)}


class TlsContexts:
    """The four contexts a node needs; ``None`` where that side runs without TLS."""

    def __init__(self, tls: TlsSettings, node_id: str, http_host: str | None = None) -> None:
        check_files(tls, node_id, http_host)
        self._tls = tls
        self._node_id = node_id
        self._http_host = http_host
        self.peer_server: ssl.SSLContext | None = None
        self.peer_client: ssl.SSLContext | None = None
        self.http_server: ssl.SSLContext | None = None
        self.http_client: ssl.SSLContext | None = None
        if tls.peers:
            self.peer_server = _context(ssl.PROTOCOL_TLS_SERVER, verify=True)
            self.peer_client = _context(ssl.PROTOCOL_TLS_CLIENT, verify=True)
        if tls.http:
            self.http_server = _context(ssl.PROTOCOL_TLS_SERVER, verify=False)
            self.http_client = _context(ssl.PROTOCOL_TLS_CLIENT, verify=True)
            self.http_client.check_hostname = True  # forwarding dials advertised names
        self._load()

    def reload(self) -> None:
        """Re-read the files into the live contexts; on any error, raise and change nothing."""
        check_files(self._tls, self._node_id, self._http_host)
        self._load()

    def _load(self) -> None:
        tls = self._tls
        for ctx in (self.peer_server, self.peer_client, self.http_server):
            if ctx is not None:
                _load_chain(ctx, tls)
        for ctx in (self.peer_server, self.peer_client, self.http_client):
            if ctx is not None:
                ctx.load_verify_locations(cafile=str(tls.ca))


def _context(protocol: int, *, verify: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if protocol == ssl.PROTOCOL_TLS_CLIENT:
        # Peers are identified by the node id in their certificate, checked by the Raft
        # handshake, not by the address they were dialed at (which NAT may rewrite).
        ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    return ctx


def _load_chain(ctx: ssl.SSLContext, tls: TlsSettings) -> None:
    try:
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    except ssl.SSLError as exc:  # checked above; a file replaced in between
        raise SecurityConfigError(f"tls.cert/tls.key: cannot load: {exc.reason}") from None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SecurityConfigError(f"{what}: no such file {path}") from None
    except OSError as exc:
        raise SecurityConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
