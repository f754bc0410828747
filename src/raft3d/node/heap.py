"""Keeping Python's cyclic garbage collector off a large, long-lived state.

A node holds its whole state in memory: a million farm objects were a few million tracked
containers (as objects, later as persistent-map nodes). CPython's cyclic collector
periodically walks every tracked object of its oldest generation; at that size one full
collection holds the event loop for seconds (5.5 s measured at 1,000,000 objects on a loaded
2-core machine), long enough to lose leadership.

The farm's objects are no longer among them: they are ``bytes`` in tuples, indexed by
``bytearray`` buckets (``raft3d.domain.record_table``), none of it tracked. What is tracked
is the interpreter's own objects, the idempotency records and the retained outcomes. The
state is immutable values: it is not garbage, and it makes no reference cycles. So once it
is built (a restore), the objects alive are moved to the collector's permanent generation
(``gc.freeze``), which it never walks (``settle_long_lived``).

What the node adds while it runs (new objects, the trie nodes of every update, log entries,
outcomes) would pile up in the oldest generation again and make each full collection walk all
of it: 15-30 ms of the loop's CPU per full collection under a write load at 1M objects,
measured, when the only freeze was at each snapshot. ``tune_collector`` bounds every pass
instead:

- *after each full collection* its survivors are frozen (a ``gc.callbacks`` hook): the
  collection has just reclaimed every unreachable cycle, so what it leaves is alive, and the
  next full collection walks only what survived since (the previous one's share);
- the *young thresholds* are lower than CPython's defaults (``THRESHOLDS``): a pass costs in
  proportion to the objects it walks, and the young generations under a write load hold
  trie nodes of 32 slots each (a default middle-generation pass: 4-11 ms of CPU, measured);
  more frequent, smaller passes do the same total work in shorter holds.

So a snapshot's capture freezes nothing itself (``after_capture``): it used to collect the young
generations and freeze everything on the loop, 5-16 ms per snapshot.

The cost: a cycle that becomes garbage after it was frozen is never reclaimed. Only objects
that survive a full collection are frozen, the node's own data makes no cycles, and what
does (a connection's objects) lives a connection's lifetime; a bounded, slow leak against
seconds of stall. ``raft3d_gc_frozen_objects`` on /metrics shows it; under writes, reads
and a new connection per request it stayed at the start-up freeze for two minutes
(``benchmarks.frozen_bench``).
"""

from __future__ import annotations

import gc
import time
from typing import Any

# (young, middle, oldest) collection thresholds; CPython's defaults are (700, 10, 10).
THRESHOLDS = (500, 3, 3)
_OLDEST = 2


def settle_long_lived() -> float:
    """Collect young garbage, then freeze every live object; returns the seconds it took."""
    started = time.perf_counter()
    gc.collect(1)
    gc.freeze()
    return time.perf_counter() - started


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == _OLDEST:
        gc.freeze()  # a full collection just ended: all it left is reachable


def tune_collector() -> None:
    """Bound each collector pass (see the module docstring); idempotent. Process-wide: the
    node's command line calls it once at start-up."""
    gc.set_threshold(*THRESHOLDS)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def untune_collector() -> None:
    """Back to CPython's collector defaults (what is frozen stays frozen)."""
    gc.set_threshold(700, 10, 10)
    if _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)


def collector_tuned() -> bool:
    return _freeze_survivors in gc.callbacks


def after_capture() -> float:
    """What a snapshot's capture does for the collector; returns the seconds it took.

    Tuned (``tune_collector``): nothing, full collections freeze what survives them. Not
    tuned (a node inside a test process, say): ``settle_long_lived``, as before."""
    if collector_tuned():
        return 0.0
    return settle_long_lived()
