"""A small in-process stand-in for a Raft node, for testing the HTTP layer.

``FakeNode`` implements ``raft3d.api.NodePort``: it applies proposed commands straight to a
real ``FarmStateMachine`` (with its own index counter), and can be told who the leader is and
which errors its next calls raise. It keeps an in-memory log of what it applied (the event
log), takes snapshots of the real state machine and compacts that log like a real node, and
has the counters ``raft3d.node.metrics.NodeCollector`` reads.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.registry import Collector
from pytest_aiohttp import AiohttpClient

from raft3d.api import create_app
from raft3d.config import (
    Address,
    HttpSettings,
    LimitSettings,
    Member,
    Settings,
    api_options,
)
from raft3d.consensus.types import Snapshot, SnapshotMeta
from raft3d.domain.results import Result
from raft3d.domain.state import FarmStateMachine
from raft3d.node.driver import RaftNode
from raft3d.node.errors import NodeStoppedError, NotLeaderError
from raft3d.node.metrics import NodeCollector
from raft3d.node.ready import NodeCounters
from raft3d.node.seams import StateMachine
from raft3d.node.status import NodeStatus, PeerInfo
from raft3d.node.wiring import build_node
from raft3d.security.forwarding_mac import ForwardClaims, forwarding_key, sign
from raft3d.security.settings import AuthSettings
from raft3d.security.tokens import ANONYMOUS_ADMIN, Identity
from tests.support.fake_members import FakeMembers
from tests.support.settings import SECRET, node_settings
from tests.support.waiting import eventually

R = TypeVar("R")

FAKE_SECRET = SECRET

# Where the fake's snapshot clock starts: 2023-11-14T22:13:20Z.
FAKE_EPOCH = 1_700_000_000.0


@dataclass(frozen=True, slots=True)
class FakeEntry:
    """One applied log entry, shaped like the driver's ``CommittedEvent``."""

    index: int
    term: int
    is_noop: bool
    data: bytes
    outcome: Result | None
    conf_change: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class FakeEventPage:
    first_index: int
    last_index: int
    snapshot_index: int
    events: list[FakeEntry]


@dataclass(frozen=True, slots=True)
class FakeSnapshotFile:
    index: int
    term: int
    size: int
    created_at: float
    data: bytes


@dataclass(slots=True)
class FakeTransport:
    dropped: dict[str, int] = field(default_factory=dict)


class FakeNode(FakeMembers):
    def __init__(
        self,
        node_id: str = "n1",
        state: FarmStateMachine | None = None,
        *,
        leader_id: str | None = None,
        leader_http: str | None = None,
        peers: tuple[PeerInfo, ...] = (),
    ) -> None:
        self._node_id = node_id
        self.init_members(node_id)
        self.cluster_id = ""  # status().cluster_id
        self.suffrage = "voter"  # status().suffrage
        self.state = FarmStateMachine() if state is None else state
        # Leader unless told otherwise; a follower raises NotLeaderError(leader_id) on propose.
        self.leader_id: str | None = node_id if leader_id is None else leader_id
        self.leader_http = leader_http
        self.peers = peers
        self.term = 1
        self.commit_index_lag = 0  # how far commit_index runs ahead of applied_index
        self.proposals: list[bytes] = []  # every command passed to propose
        self.barriers = 0  # read_barrier calls
        self._propose_errors: deque[BaseException] = deque()
        self._barrier_errors: deque[BaseException] = deque()
        self._index = 0
        self.log: list[FakeEntry] = []  # applied entries after the newest snapshot
        self.snapshot_files: list[FakeSnapshotFile] = []  # newest first
        self.snapshots_keep = 2
        self.clock = FAKE_EPOCH  # created_at of the next snapshot; each one moves it on 1.5 s
        self.snapshot_read_error: BaseException | None = None  # raised by latest_snapshot
        self.stopped = False  # events() and take_snapshot() then raise NodeStoppedError
        self.counters = NodeCounters()
        self.transport = FakeTransport()
        self.listeners: list[Callable[[FakeEntry], None]] = []
        self.halted: str | None = None  # halted_reason
        self.restoring = False  # the state is being replaced from a snapshot
        self.trailing_entries = 0  # log entries kept below a snapshot, as the driver does

    def fail_proposals(self, *errors: BaseException) -> None:
        """The next ``len(errors)`` proposals raise these, in order, and change nothing."""
        self._propose_errors.extend(errors)

    def fail_barriers(self, *errors: BaseException) -> None:
        self._barrier_errors.extend(errors)

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def applied_index(self) -> int:
        return self._index

    async def propose(self, command: bytes, timeout: float) -> Result:
        await asyncio.sleep(0)  # yield until other tasks ran, as a real node always does
        self.proposals.append(command)
        if self._propose_errors:
            raise self._propose_errors.popleft()
        if self.leader_id != self._node_id:
            self.counters.proposals["not_leader"] += 1
            raise NotLeaderError(self.leader_id)
        self._index += 1
        result = self.state.apply(self._index, command)
        self._appended(FakeEntry(self._index, self.term, False, command, result))
        self.counters.proposals["committed"] += 1
        self.counters.applied_entries += 1
        return result

    def start_term(self, term: int) -> None:
        """Become leader of ``term``: append and apply the leader's no-op entry."""
        self.term = term
        self.leader_id = self._node_id
        self.counters.elections += 1
        self._index += 1
        self._appended(FakeEntry(self._index, term, True, b"", None))
        self.counters.applied_entries += 1

    @property
    def snapshot_index(self) -> int:
        return self.snapshot_files[0].index if self.snapshot_files else 0

    def events(self, after: int, limit: int) -> FakeEventPage:
        self._check_running()
        held = [entry for entry in self.log if entry.index > after][:limit]
        first = self.log[0].index if self.log else self._index + 1
        return FakeEventPage(first, self._index, self.snapshot_index, held)

    def subscribe(self, listener: Callable[[FakeEntry], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def _appended(self, entry: FakeEntry) -> None:
        self.log.append(entry)
        for listener in list(self.listeners):
            listener(entry)

    @property
    def halted_reason(self) -> str | None:
        return self.halted

    def snapshots(self) -> list[FakeSnapshotFile]:
        return list(self.snapshot_files)

    def latest_snapshot(self) -> Snapshot | None:
        if self.snapshot_read_error is not None:
            raise self.snapshot_read_error
        if not self.snapshot_files:
            return None
        newest = self.snapshot_files[0]
        return Snapshot(SnapshotMeta(newest.index, newest.term, (self._node_id,)), newest.data)

    async def take_snapshot(self) -> int:
        """Snapshot at the applied index and drop the log up to it, as the driver does."""
        self._check_running()
        if self._index > self.snapshot_index:
            term = self.log[-1].term if self.log else self.term
            data = self.state.snapshot()
            taken = FakeSnapshotFile(self._index, term, len(data) + 64, self.clock, data)
            self.clock += 1.5
            self.snapshot_files = [taken, *self.snapshot_files][: self.snapshots_keep]
            keep_from = taken.index - self.trailing_entries
            self.log = [entry for entry in self.log if entry.index > keep_from]
            self.counters.snapshots += 1
        return self.snapshot_index

    def _check_running(self) -> None:
        if self.stopped:
            raise NodeStoppedError("node is stopping")

    async def read_barrier(self, timeout: float) -> None:
        await asyncio.sleep(0)  # yield until other tasks ran, as a real node always does
        self.barriers += 1
        if self._barrier_errors:
            raise self._barrier_errors.popleft()

    def status(self) -> NodeStatus:
        return NodeStatus(
            node_id=self._node_id,
            role="leader" if self.leader_id == self._node_id else "follower",
            term=self.term,
            leader_id=self.leader_id,
            leader_http=self.leader_http,
            commit_index=self._index + self.commit_index_lag,
            applied_index=self._index,
            last_log_index=self._index + self.commit_index_lag,
            snapshot_index=self.snapshot_index,
            peers=self.peers,
            suffrage=self.suffrage,
            cluster_id=self.cluster_id,
        )


def fake_settings(
    node_id: str = "n1",
    *,
    request_timeout_s: float = 2.0,
    max_body_bytes: int = 64 * 1024,
    members: tuple[Member, ...] = (),
    sse_heartbeat_s: float = 15.0,
    sse_buffer_events: int = 4096,
    auth: AuthSettings | None = None,
    limits: LimitSettings | None = None,
) -> Settings:
    """Settings for an app under test; ``members`` defaults to this node alone."""
    own = Member(node_id, Address("127.0.0.1", 1), Address("127.0.0.1", 2))
    return Settings(
        node_id=node_id,
        http=own.http,
        raft=own.raft,
        data_dir=Path("unused"),
        cluster_secret=FAKE_SECRET,
        members=members or (own,),
        http_settings=HttpSettings(
            request_timeout_s=request_timeout_s,
            max_body_bytes=max_body_bytes,
            sse_heartbeat_s=sse_heartbeat_s,
            sse_buffer_events=sse_buffer_events,
        ),
        auth=auth or AuthSettings(),
        limits=limits or LimitSettings(),
    )


def single_voter_settings(data_dir: Path) -> Settings:
    """Settings for a real one-node cluster (it elects itself) on a free loopback Raft port."""
    return node_settings(data_dir)


async def serve_single_voter(
    aiohttp_client: AiohttpClient, data_dir: Path, *, node_metrics: bool = False
) -> tuple[RaftNode[Result], TestClient[web.Request, web.Application]]:
    """The app wired as ``cli.build_app`` wires it, over a real node that elects itself;
    returned once ``/readyz`` says the node is ready."""
    state = FarmStateMachine()
    settings = single_voter_settings(data_dir)
    node = build_node(settings, state)
    collectors = [NodeCollector(node)] if node_metrics else []
    app = create_app(api_options(settings), node, state, collectors=collectors)

    async def node_lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.stop()

    app.cleanup_ctx.insert(0, node_lifecycle)
    client = await aiohttp_client(app)

    async def ready() -> bool:
        return (await client.get("/readyz")).status == 200

    await eventually(ready, 10, "the node to become ready")
    return node, client


def make_app(
    node: FakeNode, *, collectors: Iterable[Collector] = (), **settings: Any
) -> web.Application:
    """The real app over ``node``; other keyword arguments go to ``fake_settings``."""
    return create_app(
        api_options(fake_settings(node.node_id, **settings)),
        node,
        node.state,
        collectors=collectors,
    )


@asynccontextmanager
async def running_single_voter(
    data_dir: Path, state: StateMachine[R]
) -> AsyncIterator[RaftNode[R]]:
    """A real one-node cluster, started and elected; stopped on exit."""
    node = build_node(single_voter_settings(data_dir), state)
    await node.start()
    try:
        await eventually(lambda: node.is_leader, 10, "a single voter to elect itself")
        yield node
    finally:
        await node.stop()


def peers_named(node_id: str, *others: str) -> tuple[Member, ...]:
    """Members for ``fake_settings``: this node and ``others`` (at unused addresses)."""
    return tuple(
        Member(name, Address("127.0.0.1", 1), Address("127.0.0.1", 2))
        for name in (node_id, *others)
    )


def forwarded_by(
    peer: str,
    method: str,
    path_qs: str,
    body: bytes,
    *,
    budget_ms: int = 1000,
    caller: Identity = ANONYMOUS_ADMIN,
    content_type: str = "application/json",
    secret: bytes = FAKE_SECRET,
) -> dict[str, str]:
    """The headers a peer signs when it forwards a request (``LeaderForwarder``)."""
    claims = ForwardClaims(peer, budget_ms, caller.name, caller.role, int(time.time() * 1000))
    out = {
        "X-Raft3D-Forwarded-By": peer,
        "X-Raft3D-Budget-Ms": str(budget_ms),
        "X-Raft3D-Caller": caller.name,
        "X-Raft3D-Caller-Role": caller.role,
        "X-Raft3D-Forward-Time": str(claims.timestamp_ms),
        "Content-Type": content_type,
    }
    out["X-Raft3D-Forward-Mac"] = sign(forwarding_key(secret), method, path_qs, claims, out, body)
    return out
