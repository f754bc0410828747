"""A serving node's interpreter settings (raft3d.runtime)."""

from __future__ import annotations

import gc
import sys

from raft3d import runtime


def test_tune_for_serving_raises_gen0_and_shortens_the_switch_interval() -> None:
    before = runtime.current()
    previous = runtime.tune_for_serving(gen0=12_345, switch_interval_s=0.0007)
    try:
        assert previous == before
        assert gc.get_threshold() == (12_345, *before.gc_threshold[1:])
        assert abs(sys.getswitchinterval() - 0.0007) < 1e-9
    finally:
        runtime.restore(previous)
    assert runtime.current() == before


def test_the_defaults_are_what_a_node_serves_with() -> None:
    previous = runtime.tune_for_serving()
    try:
        assert gc.get_threshold()[0] == runtime.GEN0_THRESHOLD > 700
        assert sys.getswitchinterval() < 0.005
    finally:
        runtime.restore(previous)
