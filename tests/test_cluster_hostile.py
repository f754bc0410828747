"""Hostile bytes at the Raft ports of a live three-node key-value cluster.

Garbage, truncated and oversized frames, failed and forged handshakes, frames with bad MACs,
replays and authentic frames with forged content are fired at a follower's and at the
leader's peer port. Every one must be refused and counted under its reason, and none may
reach Raft: the forged messages carry a huge term, so one that got through would show as a
changed term. The cluster must keep its leader, term and state, and keep committing.

Attacks that need a member's name claim the follower that is not itself attacked. Each
authenticated impersonation displaces that follower's genuine connection to the target for
a moment (it redials at once), so only its links ever break and the leader keeps a quorum
throughout. A follower whose link to the leader breaks campaigns early; its pre-vote must
fail because the other follower still hears from the leader, so the term stays put.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest

from raft3d.consensus.types import Message, MsgType
from raft3d.transport import stats, wire
from tests.support.cluster_state import (
    Drops,
    add,
    changes,
    dropped,
    propose,
    wait_settled,
)
from tests.support.hostile import RawPeer, garbage_drop_reason, garbage_samples
from tests.support.procs import SECRET, NodeProcess, ProcessCluster, wait_until

KV_COMMAND = [sys.executable, "-m", "tests.support.kvnode"]
CLUSTER_SECRET = SECRET.encode()
WRONG_SECRET = b"not-the-cluster-secret-at-all-0000"
HUGE_TERM = 1_000_000  # a forged message that reached Raft would drag every node to this term
COUNT_TIMEOUT = 10.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3, KV_COMMAND) as c:
        c.start()
        yield c
        print(c.logs())  # pytest shows captured output only when the test failed


# ---------------------------------------------------------------- the attacks


@dataclass(frozen=True)
class Target:
    node: NodeProcess
    claimed: str  # the member the attacker pretends to be
    other: str  # the third member, named in forged senders and recipients

    @property
    def port(self) -> int:
        return self.node.raft_port

    def forged(self, frm: str, to: str) -> bytes:
        """A heartbeat with a huge term: harmless only as long as it never reaches Raft."""
        return Message(
            MsgType.HEARTBEAT, to=to, frm=frm, term=HUGE_TERM, commit=HUGE_TERM
        ).to_wire()


Attack = Callable[[Target], Drops]


def garbage_before_handshake(seed: int) -> Attack:
    def attack(target: Target) -> Drops:
        rng = random.Random(seed)
        expected: Drops = {}
        for junk in garbage_samples(rng):
            with RawPeer(target.port) as peer:
                peer.send(junk)
            add(expected, {garbage_drop_reason(junk): 1})
        return expected

    return attack


def truncated_frame(target: Target) -> Drops:
    with RawPeer(target.port) as peer:
        peer.send((100).to_bytes(wire.LENGTH_BYTES, "big") + b"0123456789")
    return {stats.TRUNCATED: 1}


def oversized_before_handshake(target: Target) -> Drops:
    with RawPeer(target.port) as peer:
        peer.send(b"\xff\xff\xff\xff")
        assert peer.closed_by_peer(), "an oversized prefix must be refused without its body"
    return {stats.OVERSIZED: 1}


def oversized_after_handshake(target: Target) -> Drops:
    with RawPeer(target.port) as peer:
        session = peer.answer_challenge(target.claimed, CLUSTER_SECRET)
        assert session is not None
        peer.send(session.proof_frame + b"\xff\xff\xff\xff")
        assert peer.closed_by_peer()
    return {stats.OVERSIZED: 1}


def wrong_secret(target: Target) -> Drops:
    with RawPeer(target.port) as peer:
        session = peer.answer_challenge(target.claimed, WRONG_SECRET)
        assert session is not None, "the hello itself is fine; only the proof is wrong"
        peer.send(session.proof_frame)
        assert peer.read_frame() is None, "the node must not answer a wrong proof"
    return {stats.AUTH_FAILED: 1}


def unknown_member(target: Target) -> Drops:
    with RawPeer(target.port) as peer:
        assert peer.answer_challenge("intruder", CLUSTER_SECRET) is None
    return {stats.AUTH_FAILED: 1}


def bad_mac(offset: int) -> Attack:
    """A genuine handshake, then a frame with one bit flipped at ``offset``."""

    def attack(target: Target) -> Drops:
        with RawPeer(target.port) as peer:
            session = peer.answer_challenge(target.claimed, CLUSTER_SECRET)
            assert session is not None
            frame = bytearray(session.seal(target.forged(target.claimed, target.node.node_id)))
            frame[offset] ^= 0x01
            peer.send(session.proof_frame + bytes(frame))
            assert peer.closed_by_peer()
        return {stats.BAD_MAC: 1}

    return attack


def garbage_after_handshake(seed: int) -> Attack:
    def attack(target: Target) -> Drops:
        rng = random.Random(seed)
        with RawPeer(target.port) as peer:
            session = peer.answer_challenge(target.claimed, CLUSTER_SECRET)
            assert session is not None
            junk = wire.frame(rng.randbytes(rng.randint(wire.DATA_HEADER_BYTES, 4000)))
            peer.send(session.proof_frame + junk)
            assert peer.closed_by_peer()
        return {stats.BAD_MAC: 1}

    return attack


def replay_within_session(target: Target) -> Drops:
    """An authentic frame sent twice on its own connection."""
    with RawPeer(target.port) as peer:
        session = peer.answer_challenge(target.claimed, CLUSTER_SECRET)
        assert session is not None
        frame = session.seal(target.forged(target.claimed, target.other))
        peer.send(session.proof_frame + frame + frame)
        assert peer.closed_by_peer()
    # The first copy is authentic but not addressed to the target; the second is a replay.
    return {stats.WRONG_RECIPIENT: 1, stats.REPLAY: 1}


def replay_recorded_session(target: Target) -> Drops:
    """Record a whole authenticated session, then replay it byte for byte, and its frame alone."""
    with RawPeer(target.port) as recorder:
        session = recorder.answer_challenge(target.claimed, CLUSTER_SECRET)
        assert session is not None
        recorded_frame = session.seal(target.forged(target.claimed, target.other))
        recorder.send(session.proof_frame + recorded_frame)
    # Only an authenticated connection gets as far as judging a frame's recipient, so the
    # wrong_recipient count below shows the node accepted the recorded session.
    with RawPeer(target.port) as replayer:
        replayer.send(bytes(recorder.sent))  # its proof answers a challenge no longer asked
        assert replayer.closed_by_peer()
    with RawPeer(target.port) as peer:
        fresh = peer.answer_challenge(target.claimed, CLUSTER_SECRET)
        assert fresh is not None
        peer.send(fresh.proof_frame + recorded_frame)  # sealed under the old session's key
        assert peer.closed_by_peer()
    return {stats.WRONG_RECIPIENT: 1, stats.AUTH_FAILED: 1, stats.BAD_MAC: 1}


def forged_content(target: Target) -> Drops:
    """Authentic frames whose payload lies about its sender or is not a message at all.

    These cost the frame, not the connection (the counters say which); the connection itself
    soon goes when the genuine member dials back in and displaces it.
    """
    me = target.node.node_id
    with RawPeer(target.port) as peer:
        session = peer.answer_challenge(target.claimed, CLUSTER_SECRET)
        assert session is not None
        frames = [
            session.seal(target.forged(target.other, me)),  # claims another sender
            session.seal(b"\xc1"),  # a byte msgpack never uses
            session.seal(msgpack.packb([1, 2, 3])),  # msgpack, but not a message
            session.seal(target.forged(target.claimed, me)[:-1]),  # a message cut short
        ]
        peer.send(session.proof_frame + b"".join(frames))
    return {stats.WRONG_SENDER: 1, stats.MALFORMED: 3}


ATTACKS: list[tuple[str, Attack]] = [
    ("random garbage before the handshake", garbage_before_handshake(seed=20240607)),
    ("a truncated frame, then close", truncated_frame),
    ("an oversized length prefix before the handshake", oversized_before_handshake),
    ("a handshake proved with the wrong secret", wrong_secret),
    ("a hello from a node that is not a member", unknown_member),
    ("a genuine handshake, then a frame with a corrupted MAC", bad_mac(offset=4)),
    ("a genuine handshake, then a frame with a corrupted payload", bad_mac(offset=-1)),
    ("a genuine handshake, then random garbage", garbage_after_handshake(seed=7)),
    ("a genuine handshake, then an oversized length prefix", oversized_after_handshake),
    ("an authentic frame replayed on its own connection", replay_within_session),
    ("a recorded session replayed on new connections", replay_recorded_session),
    ("authentic frames with a forged sender or malformed msgpack", forged_content),
]


def wait_for_drops(node: NodeProcess, before: Drops, expected: Drops, what: str) -> None:
    """Wait until ``node`` has counted as many drops as expected, then compare them by reason."""
    total = sum(expected.values())
    try:
        wait_until(
            lambda: sum(changes(before, dropped(node)).values()) >= total,
            COUNT_TIMEOUT,
            f"{node.node_id} to count {total} drops for {what}",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; counted {changes(before, dropped(node))}") from None
    counted = changes(before, dropped(node))
    assert counted == expected, f"{what} at {node.node_id}: counted {counted}, expected {expected}"


def stall_handshakes(targets: list[Target]) -> Drops:
    """Leave handshakes unfinished at every target, all at once; each is timed out and counted.

    One connection stays silent, one stops after reading the challenge.
    """
    before = {t.node.node_id: dropped(t.node) for t in targets}
    peers: list[RawPeer] = []
    try:
        for target in targets:
            peers.append(RawPeer(target.port))
            stuck = RawPeer(target.port)
            peers.append(stuck)
            stuck.send(wire.encode_hello(target.claimed, os.urandom(wire.NONCE_BYTES)))
            assert stuck.read_frame() is not None, "expected the challenge"
        expected = {stats.HANDSHAKE_TIMEOUT: 2}
        for target in targets:
            what = "unfinished handshakes"
            wait_for_drops(target.node, before[target.node.node_id], expected, what)
        assert all(peer.closed_by_peer() for peer in peers)
        return expected
    finally:
        for peer in peers:
            peer.close()


# ---------------------------------------------------------------- the test


@pytest.mark.timeout(180)
def test_hostile_frames_at_a_live_cluster_are_counted_and_change_nothing(
    cluster: ProcessCluster,
) -> None:
    leader = cluster.wait_for_leader(timeout=15)
    for i in range(5):
        propose(leader, f"before-{i}", str(i))
    baseline = wait_settled(cluster)
    counters_before = {nid: dropped(n) for nid, n in cluster.nodes.items()}

    follower, impersonated = (n for n in cluster.nodes.values() if n is not leader)
    # Both targets are attacked in the name of the same follower: only its links are
    # disturbed, so the leader and the attacked follower always form a quorum.
    targets = [
        Target(follower, claimed=impersonated.node_id, other=leader.node_id),
        Target(leader, claimed=impersonated.node_id, other=follower.node_id),
    ]
    expected: dict[str, Drops] = {t.node.node_id: {} for t in targets}
    for target in targets:
        for what, attack in ATTACKS:
            before = dropped(target.node)
            counted = attack(target)
            wait_for_drops(target.node, before, counted, what)
            print(f"{target.node.node_id} counted {counted} for {what}")
            add(expected[target.node.node_id], counted)
            assert all(n.alive for n in cluster.nodes.values()), f"a node died after: {what}"
    timed_out = stall_handshakes(targets)
    for target in targets:
        add(expected[target.node.node_id], timed_out)

    # Every process survived, and nothing that was refused reached Raft or the state machine.
    assert all(n.alive for n in cluster.nodes.values())
    settled = wait_settled(cluster)
    assert settled == baseline, f"before the attacks {baseline}, after {settled}"

    # Each drop was counted once, under its reason, and only where the attack landed.
    for nid, node in cluster.nodes.items():
        counted = changes(counters_before[nid], dropped(node))
        assert counted == expected.get(nid, {}), f"{nid} counted {counted}"
    # The catalogue reaches every way a peer's input can be refused, at both targets.
    for target in targets:
        reasons = set(expected[target.node.node_id])
        assert reasons >= {
            stats.AUTH_FAILED,
            stats.OVERSIZED,
            stats.TRUNCATED,
            stats.BAD_MAC,
            stats.REPLAY,
            stats.WRONG_SENDER,
            stats.WRONG_RECIPIENT,
            stats.MALFORMED,
            stats.HANDSHAKE_TIMEOUT,
        }

    # The cluster still commits, and every node applies the same result.
    result = propose(leader, "after", "attack")
    assert result["index"] == baseline[leader.node_id].commit_index + 1
    after = wait_settled(cluster)
    assert {s.applied_index for s in after.values()} == {result["index"]}
    assert len({s.digest for s in after.values()}) == 1
    assert after[leader.node_id].digest != baseline[leader.node_id].digest
    assert after[leader.node_id].term == baseline[leader.node_id].term
