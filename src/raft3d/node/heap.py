"""Keeping Python's cyclic garbage collector off a large, long-lived state.

A node holds its whole state in memory: a million farm objects are a few million tracked
containers. CPython's cyclic collector periodically walks every tracked object of its oldest
generation; at that size one full collection holds the event loop for seconds (5.5 s measured
at 1,000,000 objects on a loaded 2-core machine), long enough to lose leadership.

The state is immutable values in persistent maps: it is not garbage, and it makes no
reference cycles. So once it is built (a restore) and at each snapshot capture, the objects
alive are moved to the collector's permanent generation (``gc.freeze``), which it never walks.
Young cycles are collected first (a cheap collection of the two young generations); cycles
that become garbage after being frozen are not reclaimed, a bounded cost: only cycles alive
at a freeze, and the node's own data makes none.
"""

from __future__ import annotations

import gc
import time


def settle_long_lived() -> float:
    """Collect young garbage, then freeze every live object; returns the seconds it took."""
    started = time.perf_counter()
    gc.collect(1)
    gc.freeze()
    return time.perf_counter() - started
