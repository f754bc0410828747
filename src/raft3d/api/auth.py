"""Who is calling, and may they: bearer tokens, roles, and signed forwarding claims.

A request that carries forwarding headers comes from a peer only if the signature over it
verifies (``raft3d.security.forwarding_mac``): then the caller is whoever the forwarding node
authenticated. Otherwise, with ``[auth]`` enabled, the caller is the owner of the bearer
token; with it disabled (the local demo), everyone may do everything. Paths listed in
``auth.open`` need no token, nor do the pages and the API document (``pages.is_public_page``),
which hold no farm data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from raft3d.api import headers
from raft3d.api.errors import Forbidden, Unauthorized
from raft3d.api.inputs import ascii_decimal
from raft3d.api.options import ApiOptions
from raft3d.api.pages import is_public_page
from raft3d.api.typedefs import NODE_KEY, OPTIONS_KEY
from raft3d.security.forwarding_mac import ForwardClaims, ReplayGuard, forwarding_key, verify
from raft3d.security.tokens import (
    ADMIN,
    ANONYMOUS_ADMIN,
    OPERATOR,
    ROLES,
    VIEWER,
    Identity,
    TokenTable,
    allows,
)

_IDENTITY = web.RequestKey("identity", Identity)
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPERATIONS = ("/healthz", "/readyz", "/metrics")
# Cluster facts anyone who may read may see; every other /cluster/ path is an admin's.
_CLUSTER_VIEWS = frozenset({"/cluster/status", "/cluster/members"})
_ADMIN_PATHS = frozenset({"/join"})  # the seed-compatible spelling of adding a member


def required_role(method: str, path: str) -> str:
    """The least role that may send ``method`` to ``path``."""
    if path.startswith("/cluster/snapshots"):
        return ADMIN  # a snapshot is the whole farm's state
    if path in _CLUSTER_VIEWS and method in _READ_METHODS:
        return VIEWER
    if path.startswith("/cluster/") or path in _ADMIN_PATHS:
        return ADMIN  # cluster operations: membership changes, leadership, snapshots
    if method in _READ_METHODS or path in _OPERATIONS:
        return VIEWER
    return OPERATOR


def identity_of(request: web.Request) -> Identity:
    """The caller, as established by ``auth_middleware``."""
    try:
        return request[_IDENTITY]
    except KeyError:
        return ANONYMOUS_ADMIN


class Authenticator:
    def __init__(self, options: ApiOptions, is_member: Callable[[str], bool] | None = None) -> None:
        """``is_member``: whether a node id belongs to the cluster's current configuration
        (a node that joined after this one was configured); the configured members always
        may forward."""
        self._options = options
        self._is_member = is_member or (lambda _node_id: False)
        self._tokens = TokenTable((t.name, t.role, t.sha256) for t in options.auth.tokens)
        self._forward_key = forwarding_key(options.cluster_secret)
        self._replays = ReplayGuard()
        self._open = frozenset(options.auth.open_paths)

    @property
    def forward_key(self) -> bytes:
        return self._forward_key

    async def identify(self, request: web.Request) -> Identity | None:
        """The caller, or None for an open path; raises ``Unauthorized``."""
        if is_forwarded(request):
            return await self._forwarded(request)
        return self.identify_direct(request)

    def identify_direct(self, request: web.Request) -> Identity | None:
        """``identify`` for a request without forwarding headers (no body to read)."""
        auth = self._options.auth
        if not auth.enabled:
            return ANONYMOUS_ADMIN
        if request.path in self._open or is_public_page(request.method, request.path):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "unauthenticated", "this request needs an 'Authorization: Bearer TOKEN' header"
            )
        identity = self._tokens.identify(token.strip())
        if identity is None:
            raise Unauthorized("invalid_token", "the bearer token is not known to this node")
        return identity

    async def _forwarded(self, request: web.Request) -> Identity:
        h = request.headers
        by = h.get(headers.FORWARDED_BY, "")
        peer = by in self._options.member_urls or self._is_member(by)
        if not peer or by == self._options.node_id:
            raise Unauthorized(
                "unauthenticated_forward", f"forwarding headers from {by!r}, not a peer"
            )
        role = h.get(headers.CALLER_ROLE, "")
        claims = ForwardClaims(
            forwarded_by=by,
            budget_ms=ascii_decimal(h.get(headers.BUDGET_MS, "")) or 0,
            caller=h.get(headers.CALLER, ""),
            role=role,
            timestamp_ms=ascii_decimal(h.get(headers.FORWARD_TIME, "")) or 0,
        )
        body = await request.read()
        now_ms = int(time.time() * 1000)
        mac = h.get(headers.FORWARD_MAC, "")
        problem = verify(
            self._forward_key,
            request.method,
            request.rel_url.raw_path_qs,
            claims,
            h,
            body,
            mac,
            now_ms,
        )
        if problem is not None:
            raise Unauthorized("unauthenticated_forward", problem)
        if not self._replays.first_use(mac, claims.timestamp_ms, now_ms):
            raise Unauthorized("unauthenticated_forward", "this forwarded request was replayed")
        if role not in ROLES:
            raise Unauthorized("unauthenticated_forward", f"unknown caller role {role!r}")
        return Identity(claims.caller, role)


def is_forwarded(request: web.Request) -> bool:
    """Whether the request carries any forwarding header (then it must verify as a peer's)."""
    h = request.headers
    for name in headers.FORWARDING:  # noqa: SIM110 - no generator: this runs on every request
        if name in h:
            return True
    return False


AUTHENTICATOR_KEY = web.AppKey("authenticator", Authenticator)


async def authorize(request: web.Request) -> None:
    """Establish the caller (``identity_of``); raises ``Unauthorized`` or ``Forbidden``."""
    authenticator = request.app[AUTHENTICATOR_KEY]
    if is_forwarded(request):
        identity: Identity | None = await authenticator.identify(request)
    else:  # no coroutine for the common case
        identity = authenticator.identify_direct(request)
    if identity is ANONYMOUS_ADMIN:
        return  # auth is off: ``identity_of`` answers this without it being stored
    if identity is not None:
        needed = required_role(request.method, request.path)
        if not allows(identity.role, needed):
            raise Forbidden(
                "forbidden",
                f"{identity.name!r} has role {identity.role}; this needs {needed}",
                {"role": identity.role, "needed": needed},
            )
        request[_IDENTITY] = identity


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    await authorize(request)
    return await handler(request)


def install(app: web.Application, *, middleware: bool = True) -> None:
    """Check every request; call before the app is frozen, after the error middleware.

    ``middleware=False``: the app's own middleware calls ``authorize`` (the node's app does,
    in ``raft3d.api.middleware.serving_middleware``)."""
    node = app[NODE_KEY]

    def is_member(node_id: str) -> bool:
        return any(member.node_id == node_id for member in node.membership().members)

    app[AUTHENTICATOR_KEY] = Authenticator(app[OPTIONS_KEY], is_member)
    if middleware:
        app.middlewares.append(auth_middleware)
