"""Interpreter settings for a node process: the garbage collector and the GIL's hand-over.

Under write load a node allocates a great deal of short-lived garbage (requests, headers,
responses, commands, messages) and keeps little of it. CPython's default young-generation
threshold (700 net allocations) runs a gen0 collection every few requests, and every tenth
of those a gen1 one, each walking what survived since the last: with a larger threshold the
same garbage is collected in fewer, similar-sized walks. Full collections are kept off the
long-lived state by ``gc.freeze`` (``raft3d.node.heap``), also once the node serves.

The disk thread (fsync) waits for the loop thread to let go of the GIL before it can start
or finish a write; by default a thread that wants the GIL asks for it after 5 ms, which is a
whole write's latency at low concurrency. A shorter switch interval hands it over sooner.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass

GEN0_THRESHOLD = 20_000
SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class InterpreterSettings:
    gc_threshold: tuple[int, ...]
    switch_interval_s: float


def current() -> InterpreterSettings:
    return InterpreterSettings(gc.get_threshold(), sys.getswitchinterval())


def tune_for_serving(
    gen0: int = GEN0_THRESHOLD, switch_interval_s: float = SWITCH_INTERVAL_S
) -> InterpreterSettings:
    """Apply a node's settings; returns the ones in force before (``restore`` takes them)."""
    before = current()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)
    sys.setswitchinterval(switch_interval_s)
    return before


def restore(settings: InterpreterSettings) -> None:
    gc.set_threshold(*settings.gc_threshold)
    sys.setswitchinterval(settings.switch_interval_s)
