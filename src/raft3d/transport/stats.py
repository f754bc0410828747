"""What the transport counts: messages sent and received, and everything it dropped, by reason.

Each rejected connection is counted once, under the reason that ended it. Reasons:

Sending side (``Transport.send`` and the per-peer sender):
- ``queue_full``: the peer's send queue was at its limit; the new message was dropped.
- ``unknown_peer``: the message was addressed to a node that is not a configured peer.
- ``too_large``: the encoded message would exceed ``max_frame_bytes``; it was not sent.
- ``unencodable``: ``Message.to_wire()`` failed (a bug in the caller); it was not sent.
- ``expired``: a forwarded proposal whose proposer's deadline passed while it was queued.

Connection level (the connection is closed):
- ``auth_failed``: a handshake failed: wrong secret, an unknown or unexpected node id, a
  protocol mismatch, a malformed handshake message, or the other end closed mid-handshake
  (a connection that closes without sending a byte is not counted).
  Counted on both sides: by the acceptor for the dialer and by the dialer for the acceptor.
- ``cluster_id_mismatch``: the peer authenticated but belongs to another cluster (its
  handshake names a different cluster id). Counted on both sides.
- ``handshake_timeout``: the handshake did not complete within ``handshake_timeout``.
- ``oversized``: a length prefix above the limit (``max_frame_bytes``, or the small handshake
  limit before authentication); the body is never read.
- ``truncated``: the connection ended in the middle of a frame.
- ``bad_mac``: an authenticated connection sent a frame whose MAC does not verify.
- ``replay``: a frame with a genuine MAC but not the next sequence number (replayed,
  reordered or skipped).

Frame level (the frame is dropped, the connection stays up):
- ``malformed``: an authenticated frame whose payload is not a valid message.
- ``wrong_sender``: the message's ``frm`` is not the node that authenticated the connection.
- ``wrong_recipient``: the message's ``to`` is not this node.
"""

from __future__ import annotations

QUEUE_FULL = "queue_full"
UNKNOWN_PEER = "unknown_peer"
TOO_LARGE = "too_large"
UNENCODABLE = "unencodable"
EXPIRED = "expired"
AUTH_FAILED = "auth_failed"
HANDSHAKE_TIMEOUT = "handshake_timeout"
CLUSTER_ID_MISMATCH = "cluster_id_mismatch"
OVERSIZED = "oversized"
TRUNCATED = "truncated"
BAD_MAC = "bad_mac"
REPLAY = "replay"
MALFORMED = "malformed"
WRONG_SENDER = "wrong_sender"
WRONG_RECIPIENT = "wrong_recipient"

DROP_REASONS: tuple[str, ...] = (
    QUEUE_FULL,
    UNKNOWN_PEER,
    TOO_LARGE,
    UNENCODABLE,
    EXPIRED,
    AUTH_FAILED,
    HANDSHAKE_TIMEOUT,
    CLUSTER_ID_MISMATCH,
    OVERSIZED,
    TRUNCATED,
    BAD_MAC,
    REPLAY,
    MALFORMED,
    WRONG_SENDER,
    WRONG_RECIPIENT,
)


class TransportStats:
    """Counters shared by the transport's parts. Only the event loop thread touches them."""

    __slots__ = ("dropped", "received", "sent", "writes")

    def __init__(self) -> None:
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.sent = 0  # messages written to an authenticated connection
        self.received = 0  # messages handed to on_message
        self.writes = 0  # socket writes on outbound connections: one per batch of messages

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
