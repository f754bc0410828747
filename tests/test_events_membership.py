"""Membership changes in the event log (``GET /api/v1/events``, the SSE stream): shown as
``"membership"`` events naming the change, not as undecodable entries (a chaos run with
membership faults found them reported as ``"undecodable"`` with a null outcome)."""

from __future__ import annotations

import pytest

from raft3d.api.events import event_json
from raft3d.consensus.membership import ConfChange, ConfChangeType, encode_conf_entry
from raft3d.consensus.types import ConfState, Entry, EntryType
from raft3d.domain.results import Result
from raft3d.node.events import EventFeed


def no_outcome(index: int) -> Result | None:
    raise AssertionError(f"a membership entry has no state-machine outcome (asked for {index})")


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ConfChangeType.ADD_LEARNER, "add_learner"),
        (ConfChangeType.PROMOTE, "promote"),
        (ConfChangeType.REMOVE, "remove"),
    ],
)
def test_a_membership_entry_is_a_membership_event(kind: ConfChangeType, name: str) -> None:
    state = ConfState(voters=("n1", "n2", "n3"), learners=("n4",))
    data = encode_conf_entry(ConfChange(kind, "n4"), state)
    entry = Entry(index=7, term=2, data=data, type=EntryType.CONF_CHANGE)
    event = EventFeed[Result](no_outcome).event(entry)
    assert event_json(event) == {
        "index": 7,
        "term": 2,
        "type": "membership",
        "payload": {"change": name, "node_id": "n4"},
        "outcome": None,
    }


def test_commands_and_noops_are_unchanged() -> None:
    feed = EventFeed[Result](lambda index: None)
    noop = feed.event(Entry(index=3, term=2, type=EntryType.NOOP))
    assert event_json(noop)["type"] == "noop" and noop.conf_change is None
