"""What the membership endpoints accept: node ids, addresses, and their bodies and queries.

Addresses are checked here, before the node is asked anything (SPEC §6: a bad address is a
400 ``invalid_address``): a Raft address is ``host:port``, an HTTP address an ``http://`` or
``https://`` URL with a host, an optional port and nothing after it. Both come out in one
spelling (a lower-case host, no trailing slash), so a node that joins twice with the same
addresses is recognised.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields
from yarl import URL

from raft3d.api.errors import BadRequest
from raft3d.api.schemas import StrictSchema

MAX_NODE_ID_CHARS = 64
MAX_HOST_CHARS = 253
MAX_LOOKUP_ID_CHARS = 128
NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NODE_ID = re.compile(NODE_ID_PATTERN)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


class AddressError(ValueError):
    """Not an address a member can be reached at."""


def _host(text: str) -> str:
    """A DNS name, an IPv4 address or a bracketed IPv6 address, lower-cased."""
    if text.startswith("[") and text.endswith("]"):
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise AddressError(f"{text!r} is not an IPv6 address") from None
        return text.lower()
    if not text or len(text) > MAX_HOST_CHARS:
        raise AddressError("the host must be 1 to 253 characters")
    if not all(_LABEL.fullmatch(label) for label in text.split(".")):
        raise AddressError(f"{text!r} is not a host name or an IP address")
    return text.lower()


def _port(text: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise AddressError(f"the port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def raft_address(text: str) -> str:
    """``host:port`` (``[v6]:port`` for IPv6), normalised; raises ``AddressError``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise AddressError(f"expected host:port, got {text!r}")
    return f"{_host(host)}:{_port(port)}"


def http_address(text: str) -> str:
    """``http(s)://host[:port]``, normalised; raises ``AddressError``."""
    try:
        url = URL(text)
    except (ValueError, TypeError) as exc:
        raise AddressError(f"{text!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise AddressError(f"expected an http:// or https:// URL, got {text!r}")
    if url.user is not None or url.password is not None:
        raise AddressError("the URL must not carry a user name or password")
    if url.path not in ("", "/") or url.query_string or url.fragment:
        raise AddressError(f"expected a base URL without a path or query, got {text!r}")
    authority = url.raw_authority
    host, port = authority, ""
    if not authority.endswith("]") and ":" in authority:
        host, _, port = authority.rpartition(":")
    base = f"{url.scheme}://{_host(host)}"
    return f"{base}:{_port(port)}" if port else base


class NodeIdField(fields.Field[str]):
    """A member's id: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
    digit, at most 64 characters (it names files, metrics and log lines)."""

    default_error_messages = {
        "invalid": "Not a valid node id: 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit."
    }

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
            raise self.make_error("invalid")
        return value


class StrictBool(fields.Boolean):
    """A JSON ``true`` or ``false``: no numbers, no strings."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class AddMemberSchema(StrictSchema):
    node_id = NodeIdField(required=True)
    raft_addr = fields.String(required=True, metadata={"example": "127.0.0.1:9004"})
    http_addr = fields.String(required=True, metadata={"example": "http://127.0.0.1:8083"})
    promote = StrictBool(
        metadata={"description": "promote to voter once caught up (default true)"},
    )


class TransferSchema(StrictSchema):
    node_id = NodeIdField(
        metadata={"description": "the voter to hand over to (default: the most caught-up one)"}
    )


class NoBodySchema(StrictSchema):
    """An empty JSON object, or no body at all."""


def is_node_id(text: str) -> bool:
    """Whether ``text`` may name a new member."""
    return _NODE_ID.fullmatch(text) is not None


def may_name_member(text: str) -> bool:
    """Whether ``text`` could be an existing member's id: the members a cluster was seeded
    with (``conf/``) may have any id a node file accepts, so only a length and printable,
    valid Unicode are required of it."""
    if not 1 <= len(text) <= MAX_LOOKUP_ID_CHARS or not text.isprintable():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_body(schema: Schema, body: Mapping[str, object]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        messages = exc.messages
        details = messages if isinstance(messages, dict) else {"_body": messages}
        raise BadRequest("invalid_body", "the body is not valid", details) from None
    return loaded


def checked_addresses(raft: str, http: str, *, names: tuple[str, str]) -> tuple[str, str]:
    """Both addresses normalised, or a 400 ``invalid_address`` naming each bad one."""
    problems: dict[str, list[str]] = {}
    out: list[str] = []
    for name, text, check in ((names[0], raft, raft_address), (names[1], http, http_address)):
        try:
            out.append(check(text))
        except AddressError as exc:
            problems[name] = [str(exc)]
    if problems:
        raise BadRequest("invalid_address", "an address is not valid", problems)
    return out[0], out[1]


def bool_param(params: Mapping[str, str], name: str) -> bool:
    """An optional ``true``/``false`` query parameter (any letter case; also 1/0)."""
    raw = params.get(name)
    if raw is None:
        return False
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.lower())
    if value is None:
        raise BadRequest(
            "invalid_query", "the query string is not valid", {name: ["Must be true or false."]}
        )
    return value
