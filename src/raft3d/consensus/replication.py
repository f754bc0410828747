"""The leader part of ``RaftCore``: heartbeats and check-quorum, replication to each
follower (probe, pipelined APPs, snapshot chunks), the commit index and ReadIndex (the
decisions ``_own_match``, ``_commit_candidate``, ``_heartbeat_commit`` and
``_may_serve_reads`` are overridden by fault-injection tests)."""

from __future__ import annotations

from raft3d.consensus import quorum
from raft3d.consensus.parts import CoreParts
from raft3d.consensus.progress import Progress, ProgressState
from raft3d.consensus.read_only import PendingRead
from raft3d.consensus.recovery import RECOVERY_CONTEXT_PREFIX
from raft3d.consensus.types import Message, MsgType, NodeId, ReadState


class Replication(CoreParts):
    def _tick_leader(self) -> None:
        self._tick_transfer()
        self._maybe_promote_learners()
        self._election_elapsed += 1
        if self._election_elapsed >= self._cfg.election_ticks:
            self._election_elapsed = 0
            if self._cfg.check_quorum:
                active = {p for p, pr in self._progress.items() if pr.recent_active}
                active.add(self._id)
                if not quorum.has_quorum(self._quorum_voters(), active):
                    self._become_follower(self._term, None)
                    return
                for pr in self._progress.values():
                    pr.recent_active = False
        self._heartbeat_elapsed += 1
        if self._heartbeat_elapsed >= self._cfg.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()
            for peer, pr in self._progress.items():
                if pr.state is ProgressState.SNAPSHOT:
                    pr.chunk_heartbeats += 1
                    if pr.chunk_heartbeats >= 2:
                        self._send_snapshot_chunk(peer, pr)  # presumed lost: resend

    def _broadcast_heartbeat(self) -> None:
        context = self._reads.last_context()
        for peer, pr in self._progress.items():
            self._send(MsgType.HEARTBEAT, peer, commit=self._heartbeat_commit(pr), context=context)

    def _heartbeat_commit(self, pr: Progress) -> int:
        """A heartbeat carries no entries, so it may only commit what the follower is known
        to hold: entries it acknowledged in this term."""
        return min(pr.match, self._log.committed)

    def _step_leader(self, msg: Message) -> None:
        mtype = msg.type
        pr = self._progress.get(msg.frm)
        if pr is None:
            return
        if mtype is MsgType.APP_RESP:
            pr.recent_active = True
            self._handle_append_response(msg, pr)
        elif mtype is MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            self._handle_heartbeat_response(msg, pr)
        elif mtype is MsgType.SNAP_RESP:
            pr.recent_active = True
            self._handle_snapshot_response(msg, pr)
        elif mtype is MsgType.READ_INDEX:
            pr.recent_active = True
            if msg.context.startswith(RECOVERY_CONTEXT_PREFIX):
                self._recovery_request(msg.frm, pr)
            self._leader_read(msg.context, msg.frm)

    def _handle_append_response(self, msg: Message, pr: Progress) -> None:
        peer = msg.frm
        if msg.reject:
            hint = msg.reject_hint
            if msg.log_term > 0:
                # Skip every entry of ours in a term the follower cannot match.
                hint, _ = self._log.find_conflict_by_term(hint, msg.log_term)
            if pr.maybe_decr_to(msg.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._append_due[peer] = True
            return
        if msg.index > self._log.last_index:
            return  # acknowledges entries we never had
        was_paused = pr.is_paused()
        if pr.maybe_update(msg.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT:
                assert pr.snapshot is not None
                if pr.match >= pr.snapshot.meta.index:
                    pr.become_probe()
            else:
                pr.inflights.free_to(msg.index)
            self._maybe_commit()
            self._append_due.setdefault(peer, False)
            self._maybe_send_timeout_now(peer)
        elif was_paused and not pr.is_paused():
            self._append_due.setdefault(peer, False)

    def _handle_heartbeat_response(self, msg: Message, pr: Progress) -> None:
        if msg.index < pr.match:
            # The follower holds fewer entries than it acknowledged: its data directory was
            # lost or wiped. Start over from what it has (by snapshot if that is compacted).
            # A reordered, older answer can land here too; that costs one probe, nothing more.
            pr.match = msg.index
            pr.become_probe()
            self._append_due[msg.frm] = True
        if pr.state is ProgressState.PROBE:
            pr.probe_sent = False
        elif pr.state is ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first()
        if pr.match < self._log.last_index:
            # An empty APP doubles as a probe if earlier APPs were lost.
            self._append_due[msg.frm] = True
        if msg.context:
            for read in self._reads.ack(msg.context, msg.frm, self._quorum_voters()):
                self._release_read(read.context, read.index, read.requester)

    def _handle_snapshot_response(self, msg: Message, pr: Progress) -> None:
        if msg.done:
            if msg.index > self._log.last_index:
                return  # claims entries we never had
            pr.maybe_update(msg.index)
            if pr.state is ProgressState.SNAPSHOT:
                pr.become_probe()
            self._append_due[msg.frm] = True
            self._maybe_commit()
            self._maybe_send_timeout_now(msg.frm)
            return
        snap = pr.snapshot
        if pr.state is not ProgressState.SNAPSHOT or snap is None or msg.index != snap.meta.index:
            return
        if not msg.reject and msg.offset <= pr.snap_offset:
            return  # a duplicate answer
        pr.snap_offset = min(msg.offset, len(snap.data))
        self._send_snapshot_chunk(msg.frm, pr)

    def _own_match(self) -> int:
        """How far the leader's own log counts toward a quorum: only what is durable."""
        return self._log.stable_index

    def _commit_candidate(self) -> int:
        """The highest index a quorum has durably stored, if it is from the current term;
        otherwise the current commit index. Entries of earlier terms are never committed by
        counting replicas: they commit when a current-term entry after them does."""
        index = quorum.committed_index(self._quorum_voters(), self._match_indexes())
        if index > self._log.committed and self._log.term_at(index) == self._term:
            return index
        return self._log.committed

    def _match_indexes(self) -> dict[NodeId, int]:
        """How far each voter's log is known to match ours, the leader's own included."""
        match = {peer: pr.match for peer, pr in self._progress.items()}
        match[self._id] = self._own_match()
        return match

    def _maybe_commit(self) -> None:
        log = self._log
        if not log.commit_to(self._commit_candidate()):
            return
        self._commit_changed = True
        if self._reads_awaiting_commit and self._may_serve_reads():
            waiting = self._reads_awaiting_commit
            self._reads_awaiting_commit = []
            for context, requester in waiting:
                self._leader_read(context, requester)

    def _want_append_to_all(self) -> None:
        due = self._append_due
        for peer in self._peers:
            due.setdefault(peer, False)

    def _flush_leader_messages(self) -> None:
        """Build the APPs (and read heartbeats) that were deferred so that everything
        proposed since the last Ready goes out batched."""
        if self._read_heartbeat_due:
            self._read_heartbeat_due = False
            self._broadcast_heartbeat()
        due = self._append_due
        if self._commit_changed:
            self._commit_changed = False
            for peer in self._peers:
                due[peer] = True  # followers must learn the new commit index
        if not due:
            return
        self._append_due = {}
        last = self._log.last_index
        for peer, send_if_empty in due.items():
            pr = self._progress[peer]
            sent = self._send_append(peer, pr, send_if_empty)
            while sent and pr.state is ProgressState.REPLICATE and pr.next <= last:
                sent = self._send_append(peer, pr, False)

    def _send_append(self, peer: NodeId, pr: Progress, send_if_empty: bool) -> bool:
        if pr.is_paused():
            return False
        log = self._log
        prev_index = pr.next - 1
        prev_term = log.term_at(prev_index)
        if prev_term is None:
            return self._start_snapshot(peer, pr)
        if pr.next <= log.last_index:
            entries = log.entries_between(pr.next, log.last_index, self._cfg.max_msg_bytes)
        elif send_if_empty:
            entries = []
        else:
            return False
        self._send(
            MsgType.APP,
            peer,
            log_term=prev_term,
            index=prev_index,
            entries=entries,
            commit=log.committed,
        )
        if pr.state is ProgressState.REPLICATE:
            if entries:
                last_sent = entries[-1].index
                pr.next = last_sent + 1
                pr.inflights.add(last_sent)
        else:
            pr.probe_sent = True
        return True

    def _start_snapshot(self, peer: NodeId, pr: Progress) -> bool:
        snap = self._snapshot
        if snap is None:
            return False
        pr.become_snapshot(snap)
        self._send_snapshot_chunk(peer, pr)
        return True

    def _send_snapshot_chunk(self, peer: NodeId, pr: Progress) -> None:
        snap = pr.snapshot
        assert snap is not None
        offset = pr.snap_offset
        pr.chunk_heartbeats = 0
        chunk = snap.data[offset : offset + self._cfg.snapshot_chunk_bytes]
        self._send(
            MsgType.SNAP,
            peer,
            snapshot_meta=snap.meta,
            offset=offset,
            data=chunk,
            done=offset + len(chunk) >= len(snap.data),
        )

    # --- ReadIndex -------------------------------------------------------------------------

    def _may_serve_reads(self) -> bool:
        """Until an entry of its own term commits, a new leader does not know the cluster's
        commit point (earlier leaders may have committed more than it has marked)."""
        log = self._log
        return log.term_at(log.committed) == self._term

    def _leader_read(self, context: bytes, requester: NodeId) -> None:
        log = self._log
        if not self._may_serve_reads():
            self._reads_awaiting_commit.append((context, requester))
            return
        if quorum.has_quorum(self._quorum_voters(), (self._id,)):
            self._release_read(context, log.committed, requester)
            return
        read = PendingRead(context, log.committed, requester, {self._id})
        if self._reads.add(read):
            self._read_heartbeat_due = True

    def _release_read(self, context: bytes, index: int, requester: NodeId) -> None:
        if requester == self._id:
            self._read_states.append(ReadState(index, context))
        else:
            self._send(MsgType.READ_INDEX_RESP, requester, index=index, context=context)
