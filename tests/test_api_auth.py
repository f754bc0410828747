"""Client tokens and roles, and how a forwarded write keeps (and proves) its caller."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from pytest_aiohttp import AiohttpClient

from raft3d.api.auth import required_role
from raft3d.security.settings import AuthSettings, TokenEntry
from raft3d.security.tokens import Identity, TokenTable, hash_token, new_token
from tests.support.fakes import FAKE_SECRET, FakeNode, forwarded_by, make_app, peers_named
from tests.support.secure import TOKENS, bearer

Client = TestClient[web.Request, web.Application]
PRINTER = {"id": "p1", "company": "Prusa", "model": "MK4"}
P = "/api/v1/printers"


def auth_settings(open_paths: tuple[str, ...] = ("/healthz", "/readyz")) -> AuthSettings:
    return AuthSettings(
        enabled=True,
        open_paths=open_paths,
        tokens=tuple(
            TokenEntry(f"{role}-user", role, hash_token(token)) for role, token in TOKENS.items()
        ),
    )


@pytest.fixture
def node() -> FakeNode:
    return FakeNode("n1")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, node: FakeNode) -> Client:
    app = make_app(node, auth=auth_settings(), members=peers_named("n1", "n2"))
    return await aiohttp_client(app)


async def error(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


async def test_no_token_is_401_with_a_bearer_challenge(client: Client) -> None:
    response = await client.get(P)
    assert await error(response) == (401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await error(await client.post(P, json=PRINTER)) == (401, "unauthenticated")
    assert await error(await client.get("/nope")) == (401, "unauthenticated")


async def test_an_unknown_token_is_401(client: Client, node: FakeNode) -> None:
    for value in ("Bearer " + new_token(), "Bearer ", "Basic dXNlcjpwdw==", TOKENS["admin"]):
        response = await client.post(P, json=PRINTER, headers={"Authorization": value})
        assert response.status == 401, value
    assert node.proposals == []


async def test_roles(client: Client, node: FakeNode) -> None:
    assert (await client.get(P, headers=bearer("viewer"))).status == 200
    assert (await client.get("/cluster/status", headers=bearer("viewer"))).status == 200
    response = await client.post(P, json=PRINTER, headers=bearer("viewer"))
    assert await error(response) == (403, "forbidden")
    assert (await response.json())["error"]["details"] == {"role": "viewer", "needed": "operator"}
    assert node.proposals == []
    assert (await client.post(P, json=PRINTER, headers=bearer("operator"))).status == 201
    response = await client.post("/cluster/snapshots", headers=bearer("operator"))
    assert await error(response) == (403, "forbidden")
    for path in ("/cluster/snapshots", "/cluster/snapshots/latest"):
        assert (await client.get(path, headers=bearer("operator"))).status == 403
    assert (await client.post("/cluster/snapshots", headers=bearer("admin"))).status == 201
    response = await client.post(P, json={**PRINTER, "id": "p2"}, headers=bearer("admin"))
    assert response.status == 201


async def test_health_endpoints_are_open_as_configured(
    aiohttp_client: AiohttpClient, client: Client
) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status in (200, 503)
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=bearer("viewer"))).status == 200
    opened = make_app(FakeNode("n1"), auth=auth_settings(("/metrics",)))
    other = await aiohttp_client(opened)
    assert (await other.get("/metrics")).status == 200
    assert (await other.get("/healthz")).status == 401


def test_required_roles() -> None:
    assert required_role("GET", "/api/v1/print_jobs") == "viewer"
    assert required_role("POST", "/api/v1/print_jobs/j1/status") == "operator"
    assert required_role("PUT", "/api/v1/print_jobs/j1/status") == "operator"
    assert required_role("GET", "/cluster/status") == "viewer"
    assert required_role("GET", "/cluster/snapshots/latest") == "admin"
    assert required_role("POST", "/cluster/members") == "admin"
    assert required_role("GET", "/metrics") == "viewer"


def test_token_table_finds_by_hash_only() -> None:
    token = new_token()
    table = TokenTable([("ann", "operator", hash_token(token))])
    assert table.identify(token) == Identity("ann", "operator")
    assert table.identify(token + "x") is None
    assert table.identify(hash_token(token)) is None  # the stored hash is not a token


# --- forwarding keeps, and proves, the caller --------------------------------------------


class Pair:
    def __init__(self, follower: Client, leader: Client, seen: list[web.Request]) -> None:
        self.follower, self.leader, self.seen = follower, leader, seen


@pytest.fixture
async def pair(aiohttp_client: AiohttpClient) -> Pair:
    leader_node = FakeNode("leader")
    leader_app = make_app(leader_node, auth=auth_settings(), members=peers_named("leader", "f1"))
    seen: list[web.Request] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(request)
        return await handler(request)

    leader_app.middlewares.insert(0, record)
    leader = await aiohttp_client(leader_app)
    url = f"http://{leader.server.host}:{leader.server.port}"
    follower_node = FakeNode("f1", leader_id="leader", leader_http=url)
    members = peers_named("f1", "leader")
    follower_app = make_app(follower_node, auth=auth_settings(), members=members)
    return Pair(await aiohttp_client(follower_app), leader, seen)


async def test_the_follower_authenticates_and_the_leader_sees_who(pair: Pair) -> None:
    response = await pair.follower.post(P, json=PRINTER, headers=bearer("operator"))
    assert response.status == 201, await response.text()
    (forwarded,) = pair.seen
    assert forwarded.headers["X-Raft3D-Caller"] == "operator-user"
    assert forwarded.headers["X-Raft3D-Caller-Role"] == "operator"
    assert "Authorization" not in forwarded.headers  # the token stays with the follower


async def test_the_follower_refuses_before_forwarding(pair: Pair) -> None:
    assert (await pair.follower.post(P, json=PRINTER)).status == 401
    assert (await pair.follower.post(P, json=PRINTER, headers=bearer("viewer"))).status == 403
    assert pair.seen == []


async def test_the_leader_checks_the_forwarded_role(pair: Pair) -> None:
    body = json.dumps(PRINTER).encode()
    headers = forwarded_by("f1", "POST", P, body, caller=Identity("ann", "viewer"))
    assert await error(await pair.leader.post(P, data=body, headers=headers)) == (403, "forbidden")


@pytest.mark.parametrize("tamper", ["body", "role", "caller", "path", "peer", "self", "stale"])
async def test_forged_or_altered_forwarding_claims_are_refused(pair: Pair, tamper: str) -> None:
    body = json.dumps(PRINTER).encode()
    path = P
    headers = forwarded_by("f1", "POST", P, body, caller=Identity("ann", "viewer"))
    if tamper == "body":
        body = json.dumps({**PRINTER, "id": "p9"}).encode()
    elif tamper == "role":
        headers["X-Raft3D-Caller-Role"] = "admin"
    elif tamper == "caller":
        headers["X-Raft3D-Caller"] = "root"
    elif tamper == "path":
        path = "/api/v1/filaments"
    elif tamper == "peer":
        headers = forwarded_by("stranger", "POST", P, body)
    elif tamper == "self":
        headers = forwarded_by("leader", "POST", P, body)
    elif tamper == "stale":  # the time is signed too: changing it breaks the signature
        stale = str(int(time.time() * 1000) - 120_000)
        headers = forwarded_by("f1", "POST", P, body) | {"X-Raft3D-Forward-Time": stale}
    response = await pair.leader.post(path, data=body, headers=headers)
    assert await error(response) == (401, "unauthenticated_forward")


async def test_a_signed_claim_with_an_old_timestamp_is_refused(pair: Pair) -> None:
    import raft3d.security.forwarding_mac as mac

    body = json.dumps(PRINTER).encode()
    claims = mac.ForwardClaims("f1", 1000, "ann", "operator", int(time.time() * 1000) - 120_000)
    headers = {
        "X-Raft3D-Forwarded-By": "f1",
        "X-Raft3D-Budget-Ms": "1000",
        "X-Raft3D-Caller": "ann",
        "X-Raft3D-Caller-Role": "operator",
        "X-Raft3D-Forward-Time": str(claims.timestamp_ms),
        "Content-Type": "application/json",
    }
    key = mac.forwarding_key(FAKE_SECRET)
    headers["X-Raft3D-Forward-Mac"] = mac.sign(key, "POST", P, claims, headers, body)
    response = await pair.leader.post(P, data=body, headers=headers)
    assert await error(response) == (401, "unauthenticated_forward")
    assert "older than" in (await response.json())["error"]["message"]


async def test_a_replayed_forward_is_refused(pair: Pair) -> None:
    body = json.dumps(PRINTER).encode()
    headers = forwarded_by("f1", "POST", P, body)
    assert (await pair.leader.post(P, data=body, headers=headers)).status == 201
    replay = await pair.leader.post(P, data=body, headers=headers)
    assert await error(replay) == (401, "unauthenticated_forward")
    assert "replayed" in (await replay.json())["error"]["message"]


def test_the_replay_guard_forgets_what_is_no_longer_fresh() -> None:
    from raft3d.security.forwarding_mac import MAX_SKEW_S, ReplayGuard

    guard = ReplayGuard(capacity=3)
    assert guard.first_use("AA", 1_000, 1_000)
    assert not guard.first_use("aa", 1_000, 1_500)
    later = 1_000 + int(MAX_SKEW_S * 1000) + 1  # "aa" is stale by now: verify refuses it
    assert guard.first_use("bb", later, later)
    assert guard.first_use("aa", later, later)  # forgotten, but only after it went stale
    for mac in ("cc", "dd", "ee"):
        assert guard.first_use(mac, later, later)
    assert len(guard) <= 3  # bounded
