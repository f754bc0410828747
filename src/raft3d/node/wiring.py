"""How a node's parts are put together from its settings."""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from raft3d.config import RaftSettings, Settings
from raft3d.consensus import CoreConfig, NodeId
from raft3d.node.addresses import encode_context
from raft3d.node.driver import RaftNode
from raft3d.node.options import MemberAddress, NodeOptions
from raft3d.node.recovery import bootstrap_cluster_id
from raft3d.node.seams import StateMachine
from raft3d.storage import DurableStorage
from raft3d.storage.identity import read_identity
from raft3d.transport import Transport

if TYPE_CHECKING:
    from raft3d.security.tls import TlsContexts  # cryptography: imported only with TLS

R = TypeVar("R")


def core_config(
    node_id: NodeId,
    voters: Sequence[NodeId],
    raft: RaftSettings,
    contexts: Mapping[NodeId, bytes] | None = None,
) -> CoreConfig:
    """The Raft core's settings for ``node_id`` among ``voters`` (whose member contexts, the
    addresses, are ``contexts``): the one place where ``RaftSettings`` (milliseconds,
    operator-facing) become core settings (ticks)."""
    return CoreConfig(
        node_id=node_id,
        voters=tuple(voters),
        voter_contexts=dict(contexts or {}),
        election_ticks=raft.election_ticks,
        heartbeat_ticks=raft.heartbeat_ticks,
        lost_leader_ticks=raft.lost_leader_ticks,
        pre_vote=raft.pre_vote,
        check_quorum=raft.check_quorum,
        max_msg_bytes=raft.max_msg_bytes,
        max_inflight_msgs=raft.max_inflight_msgs,
        max_entry_bytes=raft.max_entry_bytes,
        snapshot_chunk_bytes=raft.snapshot_chunk_bytes,
        trailing_entries=raft.snapshot_trailing_entries,
    )


def seed_cluster_id(settings: Settings) -> str:
    """The cluster id every bootstrap member derives alike from ``cluster.members``."""
    members = [m.node_id for m in settings.members]
    return bootstrap_cluster_id(members, settings.cluster_secret)


def snapshot_phase(node_id: str, members: Sequence[str]) -> float:
    """Where this node's snapshots fall (``ReadyStep.snapshot_due``): the configured members
    spread evenly by id (n1, n2, n3: 0, 1/3, 2/3); a node not among them by a hash of its id."""
    ranked = sorted(set(members))
    if node_id in ranked:
        return ranked.index(node_id) / len(ranked)
    return zlib.crc32(node_id.encode()) % 1000 / 1000


def node_options(settings: Settings, *, joining: bool | None = None) -> NodeOptions:
    """What the driver needs of a node's settings.

    The seed members are the bootstrap voters of a node that bootstraps the cluster (its data
    directory is new, or its identity names the cluster they derive). A node that joins (or
    joined: its identity names another cluster) starts from an empty configuration and
    learns the real one from the leader."""
    raft = settings.raft_settings
    joining = settings.joining if joining is None else joining
    derived = seed_cluster_id(settings)
    stored = read_identity(settings.data_dir)
    bootstraps = (stored is None and not joining) or (
        stored is not None and stored.cluster_id == derived
    )
    addresses = {m.node_id: MemberAddress(str(m.raft), m.http_url) for m in settings.members}
    voters = [m.node_id for m in settings.members] if bootstraps else []
    contexts = {v: encode_context(addresses[v].raft, addresses[v].http_url) for v in voters}
    return NodeOptions(
        core=core_config(settings.node_id, voters, raft, contexts),
        tick_s=raft.tick_ms / 1000,
        snapshot_threshold=raft.snapshot_threshold,
        snapshot_log_ratio=raft.snapshot_log_ratio,
        snapshot_phase=snapshot_phase(settings.node_id, [m.node_id for m in settings.members])
        if raft.snapshot_stagger
        else None,
        default_timeout_s=settings.http_settings.request_timeout_s,
        addresses=addresses,
        data_dir=settings.data_dir,
        cluster_id=derived if bootstraps else (stored.cluster_id if stored else ""),
        joining=joining and stored is None,
    )


def build_node(
    settings: Settings,
    state_machine: StateMachine[R],
    *,
    rng: random.Random | None = None,
    tls: TlsContexts | None = None,
    joining: bool | None = None,
) -> RaftNode[R]:
    """A node on durable storage in ``settings.data_dir`` and the TCP peer transport (over
    mutual TLS when ``tls`` is given).

    ``joining`` (default: ``settings.joining``): with a blank data directory, start as a
    non-member that waits to be added (``raft3d serve --join``); see ``node_options``."""
    raft = settings.raft_settings
    options = node_options(settings, joining=joining)
    storage = DurableStorage(
        settings.data_dir,
        snapshots_keep=raft.snapshots_keep,
        trailing_entries=raft.snapshot_trailing_entries,
    )
    try:
        # The transport hands what it receives to the node built right after it.
        transport = Transport(
            settings.node_id,
            (settings.raft.host, settings.raft.port),
            {m.node_id: (m.raft.host, m.raft.port) for m in settings.peers},
            settings.cluster_secret,
            lambda msg: node.receive(msg),
            on_peer_change=lambda peer, up: node.peer_changed(peer, up),
            ssl_server=tls.peer_server if tls else None,
            ssl_client=tls.peer_client if tls else None,
            local_info=lambda: node.handshake_info(),
            on_peer_info=lambda peer, info: node.peer_handshake(peer, info),
            accept_unknown=lambda: node.accepts_strangers(),
            on_forward=lambda msg: node.receive(msg),
        )
    except BaseException:
        storage.close()
        raise
    node = RaftNode(options, storage, transport, state_machine, rng=rng)
    return node
