"""The follower part of ``RaftCore``: appending the leader's entries, heartbeats, and
assembling and installing the leader's snapshot."""

from __future__ import annotations

from raft3d.consensus.parts import CoreParts
from raft3d.consensus.types import Message, MsgType, NodeId, ReadState, ServedSnapshot


class Follower(CoreParts):
    def _step_follower(self, msg: Message) -> None:
        mtype = msg.type
        if mtype is MsgType.APP:
            self._leader_id = msg.frm
            self._election_elapsed = 0
            self._handle_append(msg)
            self._recovery_heard_leader()
        elif mtype is MsgType.HEARTBEAT:
            self._leader_id = msg.frm
            self._election_elapsed = 0
            self._handle_heartbeat(msg)
            self._recovery_heard_leader()
        elif mtype is MsgType.SNAP:
            self._leader_id = msg.frm
            self._election_elapsed = 0
            self._handle_snapshot_chunk(msg)
            self._recovery_heard_leader()
        elif mtype is MsgType.READ_INDEX_RESP:
            if not self._recovery_answer(msg):
                self._read_states.append(ReadState(msg.index, msg.context))
        elif mtype is MsgType.TIMEOUT_NOW:
            self._on_timeout_now()

    def _handle_append(self, msg: Message) -> None:
        log = self._log
        if msg.index < log.committed:
            # Everything up to our commit index already matches the leader.
            self._send(MsgType.APP_RESP, msg.frm, index=log.committed)
            return
        if log.term_at(msg.index) == msg.log_term:
            conflict = log.find_conflict(msg.entries)
            last_new = log.append_after(msg.index, msg.entries)
            if last_new is None:
                return  # would overwrite a committed entry: not from a correct leader
            if conflict:
                confs = self._confs
                # A node uses the newest configuration in its log, committed or not, and
                # falls back to an older one when a newer one is truncated away.
                changed = confs.truncate_from(conflict)
                if confs.on_entries(msg.entries[conflict - msg.index - 1 :]) or changed:
                    self._apply_conf()
            log.commit_to(min(msg.commit, last_new))
            self._send(
                MsgType.APP_RESP, msg.frm, index=self._recovery_ack_cap(last_new, msg.commit)
            )
            self._maybe_end_recovery()
            return
        hint_index, hint_term = log.find_conflict_by_term(msg.index, msg.log_term)
        self._send(
            MsgType.APP_RESP,
            msg.frm,
            index=msg.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, msg: Message) -> None:
        # The leader caps the commit index at what we acknowledged in this term.
        self._log.commit_to(min(msg.commit, self._log.last_index))
        self._maybe_end_recovery()
        # Our last index tells the leader if we hold less than we once acknowledged.
        context = self._recovery_echo(msg.context)
        self._send(MsgType.HEARTBEAT_RESP, msg.frm, index=self._log.last_index, context=context)

    def _handle_snapshot_chunk(self, msg: Message) -> None:
        meta = msg.snapshot_meta
        assert meta is not None
        log = self._log
        if meta.index <= log.committed:
            self._receiver.reset()
            self._send_snapshot_done(msg.frm, log.committed)
            return
        outcome = self._receiver.offer(msg)
        snapshot = outcome.snapshot
        if snapshot is None:
            self._send(
                MsgType.SNAP_RESP,
                msg.frm,
                index=meta.index,
                offset=outcome.received,
                reject=outcome.rejected,
            )
            return
        if log.term_at(meta.index) == meta.term:
            # Our log already holds the snapshot's last entry, hence everything before it.
            log.commit_to(meta.index)
        else:
            log.restore(meta.index, meta.term)
            self._confs.restore(meta.conf_state, meta.index)
            self._apply_conf()
            self._snapshot = ServedSnapshot.of(snapshot)
            self._received_snapshot = snapshot
            self._applying = max(self._applying, meta.index)
        self._send_snapshot_done(msg.frm, meta.index)

    def _send_snapshot_done(self, to: NodeId, index: int) -> None:
        self._send(MsgType.SNAP_RESP, to, index=index, done=True)
