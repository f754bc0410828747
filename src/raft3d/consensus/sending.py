"""Which messages of a Ready may be sent before the Ready's writes are durable.

The Ready contract (``types.Ready``) says: persist, then send. Some messages promise nothing
about the sender's disk, and holding them back behind a slow write only slows the cluster
down (or, for leadership acks, lets check-quorum depose a healthy leader):

- a leader's replication traffic: the core counts the leader's own copy of an entry only
  after ``advance()`` (Raft thesis, section 10.2.1);
- heartbeat acks, read-index requests and answers, pre-vote requests and answers: none of
  them depends on entries being durable, only on the term and vote, so they may go early
  only when the Ready does not change term or vote.

The node driver and the deterministic simulation both use this one rule.
"""

from __future__ import annotations

from raft3d.consensus.types import HardState, MsgType, Ready

REPLICATION = frozenset({MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP})
NOT_DISK_BOUND = REPLICATION | {
    MsgType.HEARTBEAT_RESP,
    MsgType.READ_INDEX,
    MsgType.READ_INDEX_RESP,
    MsgType.PRE_VOTE,
    MsgType.PRE_VOTE_RESP,
}


def sendable_before_persist(rd: Ready, durable: HardState) -> frozenset[MsgType]:
    """The message types of ``rd`` that may go out before its writes; ``durable`` is the hard
    state already on disk."""
    hs = rd.hard_state
    if hs is not None and (hs.term, hs.vote) != (durable.term, durable.vote):
        return REPLICATION
    return NOT_DISK_BOUND
