"""The stance a node takes at start from its data directory, and how an undecided one (a
wiped bootstrap member) decides from what its peers say (raft3d.node.recovery)."""

from __future__ import annotations

from pathlib import Path

from raft3d.consensus.types import Entry, HardState, InitialState, Message, MsgType
from raft3d.node.recovery import (
    RECOVERING_MARKER,
    DataDirMarks,
    RecoveryGate,
    Stance,
    bootstrap_cluster_id,
)

SEEDS = ("a", "b", "c")
BLANK = InitialState()
USED = InitialState(HardState(term=3, vote="b", commit=2), None, [Entry(1, 1), Entry(2, 3)])


class Gate:
    def __init__(self, data_dir: Path | None, node: str = "a", seeds: tuple[str, ...] = SEEDS):
        self.begun = 0
        self.marks = DataDirMarks(data_dir, node)
        self.gate = RecoveryGate(node, seeds, self.marks, self._begin)

    def _begin(self) -> None:
        self.begun += 1

    def stance(self) -> Stance:
        return self.gate.stance


def test_a_new_cluster_id_depends_on_members_and_secret_only() -> None:
    one = bootstrap_cluster_id(["a", "b", "c"], b"secret-0123456789")
    assert one == bootstrap_cluster_id(["c", "a", "b"], b"secret-0123456789")
    assert one != bootstrap_cluster_id(["a", "b"], b"secret-0123456789")
    assert one != bootstrap_cluster_id(["a", "b", "c"], b"secret-0123456780")
    assert len(one) == 16


def test_a_node_with_its_log_or_without_a_disk_is_normal(tmp_path: Path) -> None:
    g = Gate(tmp_path)
    g.marks.write_identity("c1")
    g.gate.start(USED, joining=False)
    assert g.stance() is Stance.NORMAL and g.begun == 0
    memory = Gate(None)
    memory.gate.start(BLANK, joining=False)
    assert memory.stance() is Stance.NORMAL


def test_a_blank_joiner_is_normal_and_a_single_voter_starts_at_once(tmp_path: Path) -> None:
    joiner = Gate(tmp_path / "j", node="d")
    joiner.gate.start(BLANK, joining=True)
    assert joiner.stance() is Stance.NORMAL and joiner.gate.ticking
    alone = Gate(tmp_path / "s", node="s", seeds=("s",))
    alone.gate.start(BLANK, joining=False)
    assert alone.stance() is Stance.NORMAL


def test_a_wiped_bootstrap_member_waits_then_starts_with_a_blank_majority(
    tmp_path: Path,
) -> None:
    g = Gate(tmp_path)
    g.gate.start(BLANK, joining=False)
    assert g.stance() is Stance.UNDECIDED and not g.gate.ticking and g.gate.recovering
    vote = Message(MsgType.VOTE, to="a", frm="b", term=1)
    assert not g.gate.admit(vote)
    g.gate.peer_said("zz", formed=False)  # not a seed voter: does not count
    assert g.stance() is Stance.UNDECIDED
    g.gate.peer_said("b", formed=False)
    assert g.stance() is Stance.NORMAL and g.gate.admit(vote) and g.begun == 0
    assert not (tmp_path / RECOVERING_MARKER).exists()


def test_a_formed_peer_or_a_leader_means_the_cluster_exists(tmp_path: Path) -> None:
    for learn in ("handshake", "append"):
        g = Gate(tmp_path / learn)
        g.gate.start(BLANK, joining=False)
        if learn == "handshake":
            g.gate.peer_said("c", formed=True)
        else:
            assert g.gate.admit(Message(MsgType.APP, to="a", frm="c", term=4, commit=9))
        assert g.stance() is Stance.RECOVERING and g.begun == 1
        assert (tmp_path / learn / RECOVERING_MARKER).exists()
        g.gate.peer_said("b", formed=False)  # decided: blank peers change nothing now
        assert g.stance() is Stance.RECOVERING and g.gate.ticking
        g.gate.recovered()
        assert g.stance() is Stance.NORMAL
        assert not (tmp_path / learn / RECOVERING_MARKER).exists()


def test_a_lost_log_or_a_marker_restarts_in_recovery(tmp_path: Path) -> None:
    g = Gate(tmp_path)
    assert g.marks.write_identity("c1") == "c1"
    assert g.marks.write_identity("other") == "c1"  # written once, never replaced
    g.gate.start(BLANK, joining=False)  # identity but no term: raft.db lost
    assert g.stance() is Stance.UNDECIDED
    g.gate.peer_said("b", formed=True)
    assert g.stance() is Stance.RECOVERING
    again = Gate(tmp_path)  # crashed while recovering, log partly back
    again.gate.start(USED, joining=False)
    assert again.stance() is Stance.RECOVERING and again.begun == 1
    joined = Gate(tmp_path / "d", node="d", seeds=())  # a node that joined, log lost
    joined.marks.write_identity("c1")
    joined.gate.start(BLANK, joining=False)
    assert joined.stance() is Stance.RECOVERING
