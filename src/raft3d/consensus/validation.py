"""Structural checks on messages from peers, so that a malformed one is dropped rather than
corrupting the log or raising inside the core."""

from __future__ import annotations

from raft3d.consensus.types import Message, MsgType


def is_well_formed(msg: Message) -> bool:
    mtype = msg.type
    if mtype is MsgType.APP:
        return _entries_follow(msg)
    if mtype is MsgType.SNAP:
        meta = msg.snapshot_meta
        return meta is not None and meta.index > 0 and 0 < meta.term <= msg.term
    if mtype is MsgType.APP_RESP:
        return msg.reject_hint <= msg.index
    return isinstance(mtype, MsgType)


def _entries_follow(msg: Message) -> bool:
    """Entries must continue the log right after (index, log_term), with terms that never
    decrease and never exceed the sender's term."""
    expected = msg.index + 1
    term = msg.log_term
    for entry in msg.entries:
        if entry.index != expected or entry.term < term or entry.term > msg.term:
            return False
        expected += 1
        term = entry.term
    return msg.log_term <= msg.term
