"""The membership part of ``FakeNode``: a configuration kept in memory, changed at once.

Each change is "committed" as soon as it is asked for (a fresh configuration index), unless
an error was queued with ``fail_member_changes``; every call is recorded in
``member_calls`` so tests can tell that bad input never reached the node.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from raft3d.node.errors import (
    MemberExistsError,
    NotLeaderError,
    TransferRefusedError,
    UnknownMemberError,
)
from raft3d.node.status import MemberInfo, Membership


class FakeMembers:
    """Mixed into ``FakeNode``, which provides ``_node_id`` and ``leader_id``."""

    _node_id: str
    leader_id: str | None

    def init_members(self, node_id: str) -> None:
        self.members: list[MemberInfo] = [
            MemberInfo(node_id, "127.0.0.1:2", "http://127.0.0.1:1", "voter", True, None)
        ]
        self.config_index = 0
        self.member_calls: list[tuple[str, dict[str, Any]]] = []
        self._member_errors: deque[BaseException] = deque()

    def fail_member_changes(self, *errors: BaseException) -> None:
        """The next ``len(errors)`` membership calls raise these, in order."""
        self._member_errors.extend(errors)

    def membership(self) -> Membership:
        voters = sorted((m for m in self.members if m.suffrage == "voter"), key=_id)
        learners = sorted((m for m in self.members if m.suffrage == "learner"), key=_id)
        return Membership(self.config_index, (*voters, *learners), False)

    async def _change(self, name: str, **args: Any) -> None:
        await asyncio.sleep(0)
        self.member_calls.append((name, args))
        if self._member_errors:
            raise self._member_errors.popleft()
        if self.leader_id != self._node_id:
            raise NotLeaderError(self.leader_id)

    def _find(self, node_id: str) -> MemberInfo:
        for member in self.members:
            if member.node_id == node_id:
                return member
        raise UnknownMemberError(node_id)

    def _changed(self) -> Membership:
        self.config_index += 1
        return self.membership()

    async def add_member(
        self,
        node_id: str,
        raft_addr: str,
        http_addr: str,
        *,
        promote: bool = True,
        timeout: float | None = None,
    ) -> Membership:
        await self._change(
            "add", node_id=node_id, raft_addr=raft_addr, http_addr=http_addr, promote=promote
        )
        for member in self.members:
            if member.node_id == node_id or member.raft_addr == raft_addr:
                raise MemberExistsError(member.node_id)
        self.members.append(MemberInfo(node_id, raft_addr, http_addr, "learner", False, 0))
        return self._changed()

    async def promote_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        await self._change("promote", node_id=node_id, force=force)
        member = self._find(node_id)
        self.members.remove(member)
        self.members.append(
            MemberInfo(member.node_id, member.raft_addr, member.http_addr, "voter", True, 0)
        )
        return self._changed()

    async def remove_member(
        self, node_id: str, *, force: bool = False, timeout: float | None = None
    ) -> Membership:
        await self._change("remove", node_id=node_id, force=force)
        self.members.remove(self._find(node_id))
        return self._changed()

    async def transfer_leadership(
        self, target: str | None = None, *, timeout: float | None = None
    ) -> str:
        await self._change("transfer", target=target)
        others = [
            m.node_id
            for m in self.membership().members
            if m.suffrage == "voter" and m.node_id != self._node_id
        ]
        chosen = target if target is not None else (others[0] if others else None)
        if chosen is None or chosen not in others:
            raise TransferRefusedError(f"no voter {chosen!r} to hand leadership to")
        self.leader_id = chosen
        return chosen


def _id(member: MemberInfo) -> str:
    return member.node_id
