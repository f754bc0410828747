"""Who a node is when it starts, and amnesia protection: a voter that lost its log must not
vote until a leader has brought it back up to date.

At start the node reads its data directory's identity (``raft3d.storage.identity``) and its
durable Raft state, and takes one of these stances (``Stance``):

- ``normal``: it has its log (or is a node that joins and holds nothing yet: its empty
  configuration keeps it from campaigning).
- ``recovering``: its identity says it ran before but its log is gone (``raft.db`` truncated
  or deleted), or a ``recovering`` marker says it was recovering when it stopped. Its core
  is put in recovery mode (``RaftCore.begin_recovery``, ``raft3d.consensus.recovery``): it
  grants no vote, never campaigns, accepts the log from leaders, and reports
  ``Ready.recovered`` once a confirmed leader has brought it up to date; then it is back to
  ``normal``. The marker stays in the data directory until then, so a crash during
  recovery restarts in recovery.
- ``undecided``: a bootstrap member whose whole data directory was wiped cannot tell a new
  cluster's first start from the loss of its disk. Until it knows, its core is not ticked
  (it never campaigns) and sees no vote request or TIMEOUT_NOW. It waits for handshakes: if
  any peer says its log holds something ("formed"), or a leader's message arrives, the
  cluster exists and it recovers; if a majority of the seed voters (itself included) say
  they are blank, this is the cluster's first start and it goes ``normal``.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import msgpack

from raft3d.consensus.types import InitialState, Message, MsgType
from raft3d.storage.durable_files import ensure_directory, fsync_directory
from raft3d.storage.errors import StorageError
from raft3d.storage.identity import load_or_create_identity, read_identity

log = logging.getLogger("raft3d.node")

RECOVERING_MARKER = "recovering"

_NO_SAY = frozenset({MsgType.VOTE, MsgType.PRE_VOTE, MsgType.TIMEOUT_NOW})
_FROM_LEADER = frozenset({MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP})


class Stance(enum.Enum):
    NORMAL = "normal"
    RECOVERING = "recovering"
    UNDECIDED = "undecided"


def bootstrap_cluster_id(members: Iterable[str], secret: bytes) -> str:
    """The id every bootstrap member derives alike from the seed configuration: its members'
    ids and (a hash of) the cluster secret. Not their addresses: a member may move (a new
    advertised address) without its cluster becoming another."""
    digest = hashlib.sha256(b"raft3d cluster id\x00")
    digest.update(msgpack.packb(sorted(members)))
    digest.update(hashlib.sha256(secret).digest())
    return digest.hexdigest()[:16]


class DataDirMarks:
    """What the recovery logic keeps in the data directory (nothing when ``None``: the
    in-memory twins)."""

    def __init__(self, data_dir: Path | None, node_id: str) -> None:
        self.data_dir = data_dir
        self.node_id = node_id

    @property
    def _marker(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / RECOVERING_MARKER

    def has_identity(self) -> bool:
        return self.data_dir is not None and read_identity(self.data_dir) is not None

    def identity_cluster(self) -> str | None:
        identity = None if self.data_dir is None else read_identity(self.data_dir)
        return None if identity is None else identity.cluster_id

    def write_identity(self, cluster_id: str) -> str:
        """Record ``cluster_id`` if the directory has no identity yet; returns the cluster id
        the directory belongs to."""
        if self.data_dir is None:
            return cluster_id
        existing = read_identity(self.data_dir)
        if existing is not None:
            # Checks the node id; the cluster it names is the one the node belongs to (a node
            # that joined has another than the one its seed configuration derives).
            load_or_create_identity(self.data_dir, self.node_id, existing.cluster_id)
            return existing.cluster_id
        identity, created = load_or_create_identity(self.data_dir, self.node_id, cluster_id)
        if created:
            log.info(
                "identity written node=%s cluster=%s incarnation=%s",
                self.node_id,
                identity.cluster_id,
                identity.incarnation,
            )
        return identity.cluster_id

    def marked(self) -> bool:
        marker = self._marker
        return marker is not None and marker.exists()

    def mark(self, on: bool) -> None:
        marker = self._marker
        if marker is None or self.data_dir is None:
            return
        try:
            if on:
                ensure_directory(self.data_dir)
                with marker.open("wb") as f:
                    f.write(b"this node lost its log and is catching up before it votes\n")
                    f.flush()
                    os.fsync(f.fileno())
            else:
                marker.unlink(missing_ok=True)
            fsync_directory(self.data_dir)
        except OSError as exc:
            raise StorageError(f"cannot update {marker}: {exc}") from exc


class RecoveryGate:
    """Keeps a node that may have forgotten its votes out of elections (see the module).
    ``begin_recovery`` puts the core in recovery mode."""

    def __init__(
        self,
        node_id: str,
        seed_voters: tuple[str, ...],
        marks: DataDirMarks,
        begin_recovery: Callable[[], None],
    ) -> None:
        self.node_id = node_id
        self.seed_voters = seed_voters
        self.marks = marks
        self.stance = Stance.NORMAL
        self._begin_recovery = begin_recovery
        self._blank: set[str] = set()

    # --- decisions --------------------------------------------------------------------------

    def start(self, state: InitialState, joining: bool) -> None:
        """Take the stance the data directory calls for (see the module)."""
        marks = self.marks
        if marks.data_dir is None:
            return  # nothing on disk to lose (the in-memory twins)
        had_identity = marks.has_identity()
        blank = state.hard_state.term == 0
        if marks.marked():
            self._enter(Stance.RECOVERING, "it was recovering when it stopped")
        elif blank and had_identity:
            if self.node_id in self.seed_voters:
                self._enter(Stance.UNDECIDED, "its log is gone but its identity is not")
            else:
                self._enter(Stance.RECOVERING, "its log is gone but its identity is not")
        elif blank and not joining and self.node_id in self.seed_voters:
            # Most often a new cluster's first start: the handshakes tell within a round trip.
            self._enter(Stance.UNDECIDED, "its data directory is new or was wiped", logging.INFO)
            self._maybe_first_start()

    def peer_said(self, peer: str, formed: bool) -> None:
        """A peer's handshake said whether its log holds anything."""
        if self.stance is not Stance.UNDECIDED:
            return
        if formed:
            self._enter(Stance.RECOVERING, f"peer {peer} belongs to a cluster that exists")
        elif peer in self.seed_voters:
            self._blank.add(peer)
            self._maybe_first_start()

    def _maybe_first_start(self) -> None:
        blank = len(self._blank | {self.node_id})
        if blank >= len(self.seed_voters) // 2 + 1:
            log.info(
                "first start of the cluster node=%s blank_seed_voters=%d of %d",
                self.node_id,
                blank,
                len(self.seed_voters),
            )
            self.stance = Stance.NORMAL

    def _enter(self, stance: Stance, why: str, level: int = logging.WARNING) -> None:
        log.log(
            level,
            "node %s: %s; it will not vote until a leader has brought it up to date (%s)",
            self.node_id,
            why,
            stance.value,
        )
        self.stance = stance
        if stance is Stance.RECOVERING:
            self.marks.mark(True)
            self._begin_recovery()

    def recovered(self) -> None:
        """The core left recovery mode: its log is back."""
        if self.stance is Stance.RECOVERING:
            self.marks.mark(False)
            self.stance = Stance.NORMAL
            log.warning("node %s recovered its log; it votes again", self.node_id)

    # --- the driver's calls ----------------------------------------------------------------

    @property
    def ticking(self) -> bool:
        return self.stance is not Stance.UNDECIDED

    @property
    def recovering(self) -> bool:
        return self.stance is not Stance.NORMAL

    def admit(self, msg: Message) -> bool:
        """Whether the core may see ``msg`` now."""
        if self.stance is not Stance.UNDECIDED:
            return True
        if msg.type in _NO_SAY:
            return False
        if msg.type in _FROM_LEADER and msg.term > 0:
            self._enter(Stance.RECOVERING, f"leader {msg.frm} contacted it")
        return True
