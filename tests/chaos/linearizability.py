"""Linearizability of a history against a sequential model: the Wing-Gong search with
Lowe's memoization (the "just-in-time" variant, as in Lowe 2017 and porcupine).

An operation is a call and a return. The search walks the calls in time order and tries to
linearize each one at a point where every call it has passed is still pending; a state
already reached with the same set of linearized operations is never explored twice. An
operation whose outcome is unknown returns at infinity: it may take effect at any point
after its call, or never (once only such operations are left, the history is linearizable).

``step(state, op)`` returns the states the operation may lead to: none when the observed
outcome is impossible in ``state``. States must be hashable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)
Op = TypeVar("Op")


class Verdict(Enum):
    LINEARIZABLE = "linearizable"
    VIOLATION = "not linearizable"
    INCONCLUSIVE = "search budget exhausted"


@dataclass(frozen=True)
class Timed(Generic[Op]):
    op: Op
    call: float
    ret: float  # math.inf when the outcome is unknown


class _Node:
    __slots__ = ("is_call", "match", "next", "op_index", "prev", "time")

    def __init__(self, op_index: int, is_call: bool, time: float) -> None:
        self.op_index = op_index
        self.is_call = is_call
        self.time = time
        self.match: _Node | None = None
        self.prev: _Node | None = None
        self.next: _Node | None = None


def _build_list(ops: Sequence[Timed[Op]]) -> _Node:
    nodes: list[_Node] = []
    for i, t in enumerate(ops):
        call, ret = _Node(i, True, t.call), _Node(i, False, t.ret)
        call.match = ret
        nodes += [call, ret]
    # Calls before returns at equal times: the more concurrency, the fewer false alarms.
    nodes.sort(key=lambda n: (n.time, 0 if n.is_call else 1))
    head = _Node(-1, False, -math.inf)
    prev = head
    for node in nodes:
        prev.next, node.prev = node, prev
        prev = node
    return head


def _lift(call: _Node) -> None:
    for node in (call, call.match):
        assert node is not None and node.prev is not None
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(call: _Node) -> None:
    for node in (call.match, call):
        assert node is not None and node.prev is not None
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def check(
    ops: Sequence[Timed[Op]],
    initial: S,
    step: Callable[[S, Op], Sequence[S]],
    max_steps: int = 2_000_000,
) -> Verdict:
    head = _build_list(ops)
    cache: set[tuple[int, S]] = set()
    # (call node, state before it, the alternatives not yet tried)
    stack: list[tuple[_Node, S, list[S]]] = []
    state = initial
    linearized = 0
    entry = head.next
    steps = 0

    def try_alternatives(call: _Node, before: S, options: list[S]) -> bool:
        nonlocal state, linearized, entry
        bit = 1 << call.op_index
        while options:
            candidate = options.pop(0)
            key = (linearized | bit, candidate)
            if key in cache:
                continue
            cache.add(key)
            stack.append((call, before, options))
            state, linearized = candidate, linearized | bit
            _lift(call)
            entry = head.next
            return True
        return False

    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return Verdict.INCONCLUSIVE
        assert entry is not None
        if entry.is_call:
            call = entry
            if not try_alternatives(call, state, list(step(state, ops[call.op_index].op))):
                entry = call.next
            continue
        if entry.time == math.inf:
            # Only operations of unknown outcome are left: each may not have happened.
            return Verdict.LINEARIZABLE
        # A return whose call is still pending: backtrack to the latest choice left open.
        while True:
            if not stack:
                return Verdict.VIOLATION
            call, before, options = stack.pop()
            linearized &= ~(1 << call.op_index)
            state = before
            _unlift(call)
            if try_alternatives(call, before, options):
                break
            entry = call.next
            if entry is not None:
                break
        if entry is None:
            return Verdict.VIOLATION
    return Verdict.LINEARIZABLE
