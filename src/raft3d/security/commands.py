"""``raft3d certs`` and ``raft3d token``: set-up helpers for a secured cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raft3d.security.tokens import ROLES, hash_token, new_token


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = sub.add_parser("certs", help="make a demo CA and a certificate per node")
    certs.add_argument("--out", type=Path, default=Path("certs"), help="directory to write to")
    certs.add_argument(
        "--node",
        action="append",
        required=True,
        metavar="ID[=HOST,...]",
        help="a node id and the host names/IPs it is reached at (repeat per node)",
    )
    token = sub.add_parser("token", help="print a new client token and its [[auth.tokens]] entry")
    token.add_argument("--name", required=True, help="who the token is for")
    token.add_argument("--role", required=True, choices=ROLES)


def run_certs(args: argparse.Namespace) -> int:
    from raft3d.security.certs import NodeSpec, make_demo_pki

    try:
        nodes = [NodeSpec.parse(text) for text in args.node]
    except ValueError as exc:
        print(f"raft3d: --node: {exc}", file=sys.stderr)
        return 2
    try:
        written = make_demo_pki(args.out, nodes)
    except OSError as exc:
        print(f"raft3d: cannot write to {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"keep {args.out / 'ca-key.pem'} off the nodes: it can make new node certificates")
    return 0


def run_token(args: argparse.Namespace) -> int:
    token = new_token()
    print(f"token: {token}")
    print("give the token to its user; put this in every node's TOML (the token is not stored):")
    print()
    print("[[auth.tokens]]")
    print(f'name = "{args.name}"')
    print(f'role = "{args.role}"')
    print(f'sha256 = "{hash_token(token)}"')
    return 0
