"""The peer protocol's two messages besides Raft's own: a follower's proposal forwarded to the
leader, and the leader's answer. They travel in the same authenticated frames as Raft
messages (``wire``), so they are covered by the same MAC and sequence numbers.

A Raft message's payload is a msgpack array, so its first byte is never ``FORWARD_MARK``
(0xc1, the one byte msgpack never uses): a payload that starts with it is one of these, its
second byte says which, and a msgpack array follows::

    PROPOSAL  [to, frm, proposal_id, budget_ms, data]
    ANSWER    [to, frm, proposal_id, index, term, refusal, leader_id, limit]

``budget_ms`` is what is left of the proposer's deadline when the frame is sealed (a proposal
whose deadline passed while queued is not sent at all). An answer either accepts (``refusal``
empty: the leader appended the command at ``index`` in ``term``) or refuses with one of
``REFUSALS``; ``leader_id`` then names the leader the refusing node knows ("" for none), and
``limit`` is the entry size limit of a ``too_large`` refusal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from raft3d.consensus.types import Message

FORWARD_MARK = 0xC1
_PROPOSAL = 1
_ANSWER = 2

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


Forwarding = ForwardedProposal | ProposalAnswer
PeerMessage = Message | ForwardedProposal | ProposalAnswer


def decode(raw: bytes) -> PeerMessage:
    """Any payload a peer sends; raises ``ValueError`` for anything malformed."""
    if not raw or raw[0] != FORWARD_MARK:
        return Message.from_wire(raw)
    if len(raw) < 2:
        raise ValueError("truncated forwarding message")
    try:
        fields = msgpack.unpackb(raw[2:], raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"malformed forwarding message: {exc}") from exc
    if type(fields) is not list:
        raise ValueError("malformed forwarding message")
    if raw[1] == _PROPOSAL and len(fields) == 5:
        to, frm, pid, budget, data = fields
        return ForwardedProposal(
            _str(to), _str(frm), _uint(pid), _bytes(data), budget_ms=_uint(budget)
        )
    if raw[1] == _ANSWER and len(fields) == 8:
        to, frm, pid, index, term, refusal, leader, limit = fields
        if refusal and refusal not in REFUSALS:
            raise ValueError(f"unknown refusal {refusal!r}")
        return ProposalAnswer(
            _str(to),
            _str(frm),
            _uint(pid),
            _uint(index),
            _uint(term),
            _str(refusal),
            _str(leader),
            _uint(limit),
        )
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
