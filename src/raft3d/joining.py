"""``raft3d serve --join URL``: once the node is up, ask the cluster to add it.

The node posts its own advertised addresses to ``URL/cluster/members`` (any member: a follower
forwards the request to the leader). It tries each URL in turn, with a backoff that doubles up
to a cap, until one of:

- 201: the change is committed; the node catches up (by snapshot if needed) and is promoted
  once it has;
- 409 ``member_exists`` naming this node with the same addresses: it was added before (a
  restart, or an answer lost on the way);
- a refusal no retry can change (a bad address, a wrong token, the id or Raft address taken
  by another member): ``JoinError`` at once;
- the deadline: ``JoinError``.

Transient answers are retried: no connection, 5xx (503: no leader yet, or a transfer in
progress; 504: not committed in time) and 409 ``change_in_progress`` (another change is being
committed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from raft3d.storage.errors import StorageError
from raft3d.storage.identity import read_identity

log = logging.getLogger("raft3d.join")

FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
DEFAULT_DEADLINE_S = 120.0
_RETRIED_CONFLICTS = frozenset({"change_in_progress"})


class JoinError(Exception):
    """The cluster did not add this node: refused, or no answer before the deadline."""


@dataclass(frozen=True, slots=True)
class JoinRequest:
    node_id: str
    raft_addr: str  # "host:port", as advertised to peers
    http_addr: str  # "http(s)://host:port", as advertised to clients and peers

    def body(self) -> dict[str, str]:
        return {"node_id": self.node_id, "raft_addr": self.raft_addr, "http_addr": self.http_addr}


@dataclass(frozen=True, slots=True)
class Joined:
    url: str  # the node that answered
    cluster_id: str  # "" when the answer did not carry one
    already: bool  # it was a member before this call


async def join_cluster(
    urls: Sequence[str],
    me: JoinRequest,
    *,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
    request_timeout_s: float = 15.0,
) -> Joined:
    """Ask the cluster at ``urls`` to add ``me``; raises ``JoinError``."""
    if not urls:
        raise JoinError("no cluster URL to join through")
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    backoff = FIRST_BACKOFF_S
    last = "no answer yet"
    connector = aiohttp.TCPConnector(force_close=True, ssl=ssl_context or True)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        attempt = 0
        while True:
            url = urls[attempt % len(urls)].rstrip("/")
            attempt += 1
            left = give_up - loop.time()
            if left <= 0:
                break
            try:
                status, body = await _post(session, url, me, min(request_timeout_s, left))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last = f"{url}: {exc!r}"
            else:
                joined = _outcome(url, me, status, body)
                if joined is not None:
                    return joined
                last = f"{url}: {_describe(status, body)}"
            log.info("join: not yet added (%s); retrying in %.1f s", last, backoff)
            await asyncio.sleep(max(0.0, min(backoff, give_up - loop.time())))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
    raise JoinError(f"not added to the cluster within {deadline_s:g} s: {last}")


async def _post(
    session: aiohttp.ClientSession, url: str, me: JoinRequest, timeout: float
) -> tuple[int, dict[str, Any]]:
    async with session.post(
        f"{url}/cluster/members",
        json=me.body(),
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as resp:
        raw = await resp.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return resp.status, body if isinstance(body, dict) else {}


def _outcome(url: str, me: JoinRequest, status: int, body: dict[str, Any]) -> Joined | None:
    """Joined, None to retry, or ``JoinError`` for a refusal that stays one."""
    if status == 201:
        return Joined(url, str(body.get("cluster_id", "")), already=False)
    code = _code(body)
    if status == 409 and code == "member_exists":
        details = body.get("error", {}).get("details", {})
        member = details.get("member") if isinstance(details, dict) else None
        if isinstance(member, dict) and _same_member(member, me):
            return Joined(url, str(body.get("cluster_id", "")), already=True)
        raise JoinError(f"{url} refused to add {me.node_id}: {_describe(status, body)}")
    if status >= 500 or (status == 409 and code in _RETRIED_CONFLICTS):
        return None
    raise JoinError(f"{url} refused to add {me.node_id}: {_describe(status, body)}")


def _same_member(member: dict[str, Any], me: JoinRequest) -> bool:
    # The API stores addresses with a lower-case host and no trailing slash.
    def spelled(text: object) -> str:
        return str(text).lower().rstrip("/")

    return (
        member.get("node_id") == me.node_id
        and spelled(member.get("raft_addr")) == spelled(me.raft_addr)
        and spelled(member.get("http_addr")) == spelled(me.http_addr)
    )


def _code(body: dict[str, Any]) -> str:
    error = body.get("error")
    return str(error.get("code")) if isinstance(error, dict) else ""


def _describe(status: int, body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return f"{status} {error.get('code')}: {error.get('message')}"
    return f"HTTP {status}"


@dataclass(frozen=True, slots=True)
class JoinPlan:
    """What ``raft3d serve --join`` was asked to do."""

    urls: tuple[str, ...]
    token: str | None
    deadline_s: float


def plan_for(
    urls: Sequence[str], data_dir: Path, token: str | None, deadline_s: float
) -> JoinPlan | None:
    """The join to run, or None: no ``--join``, or the data dir already belongs to a node of
    a cluster (its identity names the cluster), which restarts as the member it is.

    An identity without a cluster id is a joiner's that was never added (it stopped before
    the cluster answered): it asks again; asking twice with the same addresses is harmless.
    """
    if not urls:
        return None
    try:
        identity = read_identity(data_dir)
    except StorageError as exc:
        log.warning("--join ignored: the data dir's identity cannot be read: %s", exc)
        return None
    if identity is not None and identity.cluster_id:
        log.info(
            "--join ignored: data dir %s already holds node %s of cluster %s; restarting it",
            data_dir,
            identity.node_id,
            identity.cluster_id,
        )
        return None
    return JoinPlan(tuple(urls), token, deadline_s)


async def run_join(plan: JoinPlan, me: JoinRequest, ssl_context: ssl.SSLContext | None) -> Joined:
    """Join as ``plan`` says, logging the outcome; raises ``JoinError``."""
    log.info("joining the cluster through %s as %s", ", ".join(plan.urls), me.node_id)
    joined = await join_cluster(
        plan.urls, me, token=plan.token, ssl_context=ssl_context, deadline_s=plan.deadline_s
    )
    log.info(
        "joined the cluster through %s node=%s cluster_id=%s%s",
        joined.url,
        me.node_id,
        joined.cluster_id or "-",
        " (already a member)" if joined.already else "",
    )
    return joined


async def join_or_stop(
    plan: JoinPlan,
    me: JoinRequest,
    ssl_context: ssl.SSLContext | None,
    stop: asyncio.Event,
    failed: list[str],
) -> None:
    """Run the join beside the serving node; on failure note why in ``failed`` and ``stop``
    the node. Returns (without stopping anything) once joined."""
    try:
        await run_join(plan, me, ssl_context)
    except JoinError as exc:
        log.error("could not join the cluster: %s", exc)
        failed.append(str(exc))
        stop.set()
