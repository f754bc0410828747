"""Configs for secured clusters in tests: demo certificates, TLS and client tokens on.

Every node gets the same three tokens, one per role, known to the test by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raft3d.security.certs import NodeSpec, make_demo_pki
from raft3d.security.tokens import ROLES, hash_token

SECRET = "secured-test-secret-0123456789"
# Fixed test tokens (what `raft3d token` would hand out), by role.
TOKENS = {role: f"r3d_test-{role}-token-0123456789abcdef" for role in ROLES}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@dataclass(frozen=True, slots=True)
class SecureNode:
    node_id: str
    bind_host: str  # what the node listens on
    host: str  # what it advertises (and its certificate names)
    http_port: int
    raft_port: int

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.http_port}"


def write_configs(
    root: Path,
    nodes: Sequence[SecureNode],
    *,
    open_paths: Sequence[str] = ("/healthz", "/readyz"),
    raft: str = "",
) -> dict[str, Path]:
    """Certificates under ``root/certs`` and one TOML per node; returns the TOML paths."""
    certs = root / "certs"
    make_demo_pki(certs, [NodeSpec(n.node_id, (n.host, n.node_id)) for n in nodes])
    members = "".join(
        f'\n[[cluster.members]]\nid = "{n.node_id}"\nhttp = "{n.host}:{n.http_port}"\n'
        f'raft = "{n.host}:{n.raft_port}"\n'
        for n in nodes
    )
    tokens = "".join(
        f'\n[[auth.tokens]]\nname = "{role}-user"\nrole = "{role}"\n'
        f'sha256 = "{hash_token(token)}"\n'
        for role, token in TOKENS.items()
    )
    opened = ", ".join(f'"{p}"' for p in open_paths)
    paths = {}
    for n in nodes:
        conf = root / f"{n.node_id}.toml"
        conf.write_text(
            f'[node]\nid = "{n.node_id}"\nhttp = "{n.bind_host}:{n.http_port}"\n'
            f'raft = "{n.bind_host}:{n.raft_port}"\n'
            f'advertise_http = "{n.host}:{n.http_port}"\n'
            f'advertise_raft = "{n.host}:{n.raft_port}"\n'
            f'data_dir = "{root / n.node_id}"\n\n'
            f'[cluster]\nsecret = "{SECRET}"\n{members}\n'
            f'[tls]\nca = "{certs / "ca.pem"}"\ncert = "{certs / f"{n.node_id}.pem"}"\n'
            f'key = "{certs / f"{n.node_id}-key.pem"}"\n\n'
            f"[auth]\nenabled = true\nopen = [{opened}]\n{tokens}\n[raft]\n{raft}"
        )
        paths[n.node_id] = conf
    return paths
