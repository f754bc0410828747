"""Membership faults (SPEC §6), registered in ``nemesis.MEMBERSHIP_FAULTS`` on import.

- ``transfer``: ``POST /cluster/leader`` to the leader (no target: the most caught-up voter).
- ``learner``: a new node is added with ``"promote": false``, started with ``--join``, and
  promoted by hand once the leader sees it caught up (``POST /cluster/members/{id}/promote``); then
  removed again and stopped, so that the cluster is back to its size before the next fault.
- ``readd``: a follower is removed (``DELETE /cluster/members/{id}``), stopped, and started
  again under the same id with a fresh, empty data dir and ``--join``: it comes back as a
  learner, catches up (by snapshot if the log was compacted) and is promoted.

Each waits with a deadline and undoes what it did even when a step fails; a step the
cluster refuses (a 409 while another change is pending, a 503 without a leader) ends the
fault with the refusal in its detail, which is not an anomaly. Nodes added here are not
behind the link proxy: partitions cut the original members' links only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
import tomllib
from typing import Any

import aiohttp

from tests.support.procs import SECRET, NodeProcess, free_ports

from .nemesis import MEMBERSHIP_FAULTS, Nemesis

STEP_TIMEOUT_S = 20.0
_learners = itertools.count(1)


async def _call(
    nemesis: Nemesis, method: str, path: str, body: object | None = None, via: str | None = None
) -> tuple[int, Any]:
    """One request through ``via`` or the first live original node that answers (membership
    requests are forwarded to the leader like writes); (0, None) when none answers."""
    assert nemesis.session is not None
    order = [via] if via else [n for n in nemesis.cluster.ids if n not in nemesis.down]
    for node in order:
        if node in nemesis.paused:
            continue
        url = f"{nemesis.cluster.nodes[node].url}{path}"
        try:
            async with nemesis.session.request(
                method, url, json=body, timeout=aiohttp.ClientTimeout(total=STEP_TIMEOUT_S)
            ) as resp:
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            continue
    return 0, None


def _code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code"))
    return repr(body)[:80]


async def _suffrage(nemesis: Nemesis, node_id: str) -> str | None:
    code, body = await _call(nemesis, "GET", "/cluster/members")
    if code != 200 or not isinstance(body, dict):
        return None
    for member in body.get("members", []):
        if member.get("node_id") == node_id:
            return str(member.get("suffrage"))
    return "absent"


async def _wait_suffrage(nemesis: Nemesis, node_id: str, wanted: str) -> bool:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        if await _suffrage(nemesis, node_id) == wanted:
            return True
        await asyncio.sleep(0.1)  # polling interval
    return False


async def _wait_caught_up(nemesis: Nemesis, node_id: str, lag: int = 10) -> bool:
    """The leader sees ``node_id`` reachable, its match index within ``lag`` of the
    voters'."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        leader = await nemesis.leader()
        if leader is not None:
            code, body = await _call(nemesis, "GET", "/cluster/members", via=leader)
            if code == 200 and isinstance(body, dict):
                members = {m["node_id"]: m for m in body.get("members", [])}
                me = members.get(node_id)
                voters = [m["match_index"] or 0 for m in members.values() if m is not me]
                if me and me["reachable"] and (me["match_index"] or 0) >= max(voters) - lag:
                    return True
        await asyncio.sleep(0.1)  # polling interval
    return False


async def _remove(nemesis: Nemesis, node_id: str) -> str:
    """DELETE the member, retrying refusals until it is gone or the deadline passes."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        code, body = await _call(nemesis, "DELETE", f"/cluster/members/{node_id}")
        if code in (200, 404):
            return "removed"
        last = f"{code} {_code(body)}"
        await asyncio.sleep(0.2)  # retry pacing
    return f"not removed ({last})"


async def _leader(nemesis: Nemesis, within: float = 10.0) -> str | None:
    """The leader, looked for a little while (the previous fault may have left an election
    in progress)."""
    for _ in range(int(within / 0.1)):
        leader = await nemesis.leader()
        if leader is not None:
            return leader
        await asyncio.sleep(0.1)  # polling interval
    return await nemesis.leader()


async def transfer(nemesis: Nemesis, rng: random.Random) -> str:
    leader = await _leader(nemesis)
    if leader is None:
        return "skipped: no leader"
    code, body = await _call(nemesis, "POST", "/cluster/leader", {}, via=leader)
    if code == 200 and isinstance(body, dict):
        return f"{leader} -> {body.get('leader_id')}"
    return f"{leader}: {code} {_code(body)}"


def _learner_process(nemesis: Nemesis, node_id: str) -> NodeProcess:
    """A node on fresh ports whose config lists only itself, with the original nodes'
    ``[raft]`` and ``[http]`` settings; it joins through the original nodes."""
    cluster = nemesis.cluster
    first = cluster.nodes[cluster.ids[0]]
    base = tomllib.loads(first.config_path.read_text())
    http_port, raft_port = free_ports(2)
    data_dir = cluster.root / node_id
    own = f'http = "127.0.0.1:{http_port}"\nraft = "127.0.0.1:{raft_port}"\n'
    tables = "".join(
        f"\n[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in base[name].items())
        for name in ("raft", "http")
        if name in base
    )
    conf = cluster.root / f"{node_id}.toml"
    conf.write_text(
        f'[node]\nid = "{node_id}"\n{own}data_dir = "{data_dir}"\n\n'
        f'[cluster]\nsecret = "{SECRET}"\n\n[[cluster.members]]\nid = "{node_id}"\n{own}'
        f"{tables}"
    )
    joins = [a for n in cluster.ids for a in ("--join", cluster.nodes[n].url)]
    return NodeProcess(
        node_id,
        http_port,
        raft_port,
        conf,
        data_dir,
        cluster.root / f"{node_id}.log",
        [sys.executable, "-m", "raft3d", "serve"],
        args=joins,
    )


async def learner(nemesis: Nemesis, rng: random.Random) -> str:
    node_id = f"l{next(_learners)}"
    node = _learner_process(nemesis, node_id)
    body = {
        "node_id": node_id,
        "raft_addr": f"127.0.0.1:{node.raft_port}",
        "http_addr": node.url,
        "promote": False,
    }
    code, reply = await _call(nemesis, "POST", "/cluster/members", body)
    if code != 201:
        return f"{node_id}: add refused, {code} {_code(reply)}"
    try:
        node.start()
        if not await _wait_caught_up(nemesis, node_id):
            return f"{node_id}: the learner did not catch up in time"
        code, reply = await _call(nemesis, "POST", f"/cluster/members/{node_id}/promote")
        if code != 200:
            return f"{node_id}: promote refused, {code} {_code(reply)}"
        promoted = await _wait_suffrage(nemesis, node_id, "voter")
        return f"{node_id}: " + ("learner promoted" if promoted else "not a voter in time")
    finally:
        removed = await _remove(nemesis, node_id)
        node.kill()
        nemesis.history.notes.extend([] if removed == "removed" else [f"{node_id} {removed}"])


async def readd(nemesis: Nemesis, rng: random.Random) -> str:
    leader = await _leader(nemesis)
    followers = [
        n
        for n in nemesis.cluster.ids
        if n != leader and n not in nemesis.down and n not in nemesis.paused
    ]
    if leader is None or not followers:
        return "skipped: no leader"
    node_id = rng.choice(followers)
    code, reply = await _call(nemesis, "DELETE", f"/cluster/members/{node_id}", via=leader)
    if code != 200:
        return f"{node_id}: remove refused, {code} {_code(reply)}"
    node = nemesis.cluster.nodes[node_id]
    node.kill()
    nemesis.down.add(node_id)
    fresh = nemesis.cluster.root / f"{node_id}-{time.monotonic_ns()}"
    joins = [a for n in nemesis.cluster.ids if n != node_id for a in ("--join", _url(nemesis, n))]
    node.args = ["--data-dir", str(fresh), *joins]
    node.start()
    nemesis.down.discard(node_id)
    back = await _wait_suffrage(nemesis, node_id, "voter")
    return f"{node_id}: removed, re-added with an empty data dir, " + (
        "a voter again" if back else "not a voter in time"
    )


def _url(nemesis: Nemesis, node_id: str) -> str:
    return nemesis.cluster.nodes[node_id].url


MEMBERSHIP_FAULTS.update(
    {
        "transfer": (1.5, transfer),
        "learner": (0.8, learner),
        "readd": (0.8, readd),
    }
)
