"""A small in-process stand-in for a Raft node, for testing the HTTP layer.

``FakeNode`` implements ``raft3d.api.NodePort``: it applies proposed commands straight to a
real ``FarmStateMachine`` (with its own index counter), and can be told who the leader is and
which errors its next calls raise.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import web

from raft3d.api import create_app
from raft3d.config import Address, HttpSettings, Member, Settings
from raft3d.domain.state import FarmStateMachine
from raft3d.node.errors import NotLeaderError
from raft3d.node.status import NodeStatus, PeerInfo


class FakeNode:
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

    async def propose(self, command: bytes, timeout: float) -> object:
        await asyncio.sleep(0)  # a real node always yields
        self.proposals.append(command)
        if self._propose_errors:
            raise self._propose_errors.popleft()
        if self.leader_id != self._node_id:
            raise NotLeaderError(self.leader_id)
        self._index += 1
        return self.state.apply(self._index, command)

    async def read_barrier(self, timeout: float) -> None:
        await asyncio.sleep(0)
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
            snapshot_index=0,
            peers=self.peers,
        )


def fake_settings(
    node_id: str = "n1",
    *,
    request_timeout_s: float = 2.0,
    max_body_bytes: int = 64 * 1024,
    members: tuple[Member, ...] = (),
) -> Settings:
    """Settings for an app under test; ``members`` defaults to this node alone."""
    own = Member(node_id, Address("127.0.0.1", 1), Address("127.0.0.1", 2))
    return Settings(
        node_id=node_id,
        http=own.http,
        raft=own.raft,
        data_dir=Path("unused"),
        cluster_secret=b"test-secret-0123456789",
        members=members or (own,),
        http_settings=HttpSettings(
            request_timeout_s=request_timeout_s, max_body_bytes=max_body_bytes
        ),
    )


def make_app(node: FakeNode, **settings: Any) -> web.Application:
    """The real app over ``node``; keyword arguments go to ``fake_settings``."""
    return create_app(fake_settings(node.node_id, **settings), node, node.state)
