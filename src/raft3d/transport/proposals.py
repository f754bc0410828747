"""The peer protocol's two messages besides Raft's own: a follower's proposal forwarded to the
leader, and the leader's answer. They travel in the same authenticated frames as Raft
messages (``wire``), so they are covered by the same MAC and sequence numbers.

A Raft message's payload is a msgpack array, so its first byte is never ``FORWARD_MARK``
(0xc1, the one byte msgpack never uses): a payload that starts with it is one of these, its
second byte says which, and a msgpack array follows::

    PROPOSAL   [to, frm, proposal_id, budget_ms, data]
    ANSWER     [to, frm, proposal_id, index, term, refusal, leader_id, limit]
    PROPOSALS  [to, frm, [[proposal_id, budget_ms, data], ...]]
    ANSWERS    [to, frm, [[proposal_id, index, term, refusal, leader_id, limit], ...]]

The link sends what is queued for a peer in one turn of the loop as grouped frames
(``encode_group``: the proposals a busy follower forwards, the answers the leader gives
them), one MAC and one decode for all; the single forms are still read. ``budget_ms`` is
what is left of the proposer's deadline when the frame is sealed (a proposal whose deadline
passed while queued is not sent at all). An answer either accepts (``refusal``
empty: the leader appended the command at ``index`` in ``term``) or refuses with one of
``REFUSALS``; ``leader_id`` then names the leader the refusing node knows ("" for none), and
``limit`` is the entry size limit of a ``too_large`` refusal.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgpack

from raft3d.consensus.types import Message

FORWARD_MARK = 0xC1
_PROPOSAL = 1
_ANSWER = 2
_PROPOSALS = 3
_ANSWERS = 4
# What a grouped frame costs beyond its items' data: the header, and per item its fields.
GROUP_BYTES = 64
ITEM_BYTES = 64

NOT_LEADER = "not_leader"
TOO_LARGE = "too_large"
TRANSFERRING = "transferring"  # the leader is handing over leadership
STOPPED = "stopped"  # the leader is stopping or halted
EXPIRED = "expired"  # the proposer's budget was spent before the leader saw it
REFUSALS = (NOT_LEADER, TOO_LARGE, TRANSFERRING, STOPPED, EXPIRED)

_packb: Callable[..., bytes] = msgpack.packb


@dataclass(frozen=True, slots=True)
class ForwardedProposal:
    """An encoded command a follower asks the leader to propose. ``deadline`` is the
    proposer's ``time.monotonic()`` deadline: it never leaves the proposer's process (the
    wire carries what remains of it)."""

    to: str
    frm: str
    proposal_id: int
    data: bytes
    deadline: float = 0.0
    budget_ms: int = 0  # as received (0 on the proposer's side: it is computed when sent)

    def remaining_ms(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def to_wire(self) -> bytes:
        fields = [self.to, self.frm, self.proposal_id, self.remaining_ms(), self.data]
        return bytes((FORWARD_MARK, _PROPOSAL)) + _packb(fields, use_bin_type=True)

    def wire_size(self) -> int:
        """At most what it adds to a grouped frame."""
        return len(self.data) + ITEM_BYTES


@dataclass(frozen=True, slots=True)
class ProposalAnswer:
    """The leader's answer to a ``ForwardedProposal`` with the same ``proposal_id``."""

    to: str
    frm: str
    proposal_id: int
    index: int = 0
    term: int = 0
    refusal: str = ""  # "" (accepted) or one of REFUSALS
    leader_id: str = ""
    limit: int = 0

    def to_wire(self) -> bytes:
        fields = [
            self.to,
            self.frm,
            self.proposal_id,
            self.index,
            self.term,
            self.refusal,
            self.leader_id,
            self.limit,
        ]
        return bytes((FORWARD_MARK, _ANSWER)) + _packb(fields, use_bin_type=True)

    def wire_size(self) -> int:
        return len(self.leader_id) + len(self.refusal) + ITEM_BYTES


Forwarding = ForwardedProposal | ProposalAnswer
PeerMessage = Message | ForwardedProposal | ProposalAnswer


def take_group(
    first: Forwarding, queue: deque[PeerMessage], max_payload: int
) -> tuple[list[Forwarding], int]:
    """``first`` and the messages of its kind from the same sender queued right behind it,
    taken off ``queue`` up to a frame's worth, for one grouped frame; and how many
    proposals were left out because their proposer gave up (never sent). A message of
    another kind stops the group: it stays where it is."""
    kind, frm = type(first), first.frm
    group: list[Forwarding] = []
    expired = 0
    size = GROUP_BYTES
    msg = first
    while True:
        if type(msg) is ForwardedProposal and msg.remaining_ms() <= 0:
            expired += 1
        else:
            group.append(msg)
            size += msg.wire_size()
        if not queue:
            break
        nxt = queue[0]
        if type(nxt) is not kind or nxt.frm != frm:
            break
        assert type(nxt) is ForwardedProposal or type(nxt) is ProposalAnswer
        if group and size + nxt.wire_size() > max_payload:
            break  # the next frame's
        queue.popleft()
        msg = nxt
    return group, expired


def encode_group(group: Sequence[Forwarding]) -> bytes:
    """One payload for messages of one kind, all from ``frm`` to ``to`` of the first."""
    first = group[0]
    items: list[list[Any]]
    if type(first) is ForwardedProposal:
        proposals = cast("Sequence[ForwardedProposal]", group)
        kind = _PROPOSALS
        items = [[p.proposal_id, p.remaining_ms(), p.data] for p in proposals]
    else:
        answers = cast("Sequence[ProposalAnswer]", group)
        kind = _ANSWERS
        items = [[a.proposal_id, a.index, a.term, a.refusal, a.leader_id, a.limit] for a in answers]
    return bytes((FORWARD_MARK, kind)) + _packb([first.to, first.frm, items], use_bin_type=True)


def decode_all(raw: bytes) -> list[PeerMessage]:
    """The messages of one payload: one, or a grouped frame's (never empty); raises
    ``ValueError`` for anything malformed."""
    if len(raw) < 2 or raw[0] != FORWARD_MARK or raw[1] not in (_PROPOSALS, _ANSWERS):
        return [decode(raw)]
    fields = _unpack(raw)
    if len(fields) != 3 or type(fields[2]) is not list or not fields[2]:
        raise ValueError("malformed grouped forwarding message")
    to, frm, items = _str(fields[0]), _str(fields[1]), fields[2]
    out: list[PeerMessage] = []
    if raw[1] == _PROPOSALS:
        for item in items:
            if type(item) is not list or len(item) != 3:
                raise ValueError("malformed forwarded proposal")
            pid, budget, data = item
            proposal = ForwardedProposal(to, frm, _uint(pid), _bytes(data), budget_ms=_uint(budget))
            out.append(proposal)
        return out
    for item in items:
        if type(item) is not list or len(item) != 6:
            raise ValueError("malformed proposal answer")
        out.append(_answer(to, frm, *item))
    return out


def _unpack(raw: bytes) -> list[Any]:
    try:
        fields = msgpack.unpackb(raw[2:], raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"malformed forwarding message: {exc}") from exc
    if type(fields) is not list:
        raise ValueError("malformed forwarding message")
    return fields


def _answer(
    to: str, frm: str, pid: Any, index: Any, term: Any, refusal: Any, leader: Any, limit: Any
) -> ProposalAnswer:
    if refusal and refusal not in REFUSALS:
        raise ValueError(f"unknown refusal {refusal!r}")
    return ProposalAnswer(
        to, frm, _uint(pid), _uint(index), _uint(term), _str(refusal), _str(leader), _uint(limit)
    )


def decode(raw: bytes) -> PeerMessage:
    """Any payload a peer sends; raises ``ValueError`` for anything malformed."""
    if not raw or raw[0] != FORWARD_MARK:
        return Message.from_wire(raw)
    if len(raw) < 2:
        raise ValueError("truncated forwarding message")
    fields = _unpack(raw)
    if raw[1] == _PROPOSAL and len(fields) == 5:
        to, frm, pid, budget, data = fields
        return ForwardedProposal(
            _str(to), _str(frm), _uint(pid), _bytes(data), budget_ms=_uint(budget)
        )
    if raw[1] == _ANSWER and len(fields) == 8:
        return _answer(_str(fields[0]), _str(fields[1]), *fields[2:])
    raise ValueError("unknown forwarding message")


def _uint(v: Any) -> int:
    if type(v) is not int or v < 0:
        raise ValueError("expected a non-negative integer")
    return v


def _str(v: Any) -> str:
    if type(v) is not str:
        raise ValueError("expected a string")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        raise ValueError("expected bytes")
    return v
