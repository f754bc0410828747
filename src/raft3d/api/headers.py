"""Header names the API reads and writes."""

from __future__ import annotations

NODE = "X-Raft3D-Node"
APPLIED_INDEX = "X-Raft3D-Applied-Index"
FORWARDED_BY = "X-Raft3D-Forwarded-By"
# Remaining time budget, in milliseconds, that a forwarding node grants the leader, so that the
# leader gives up (and says why) before the forwarding node stops waiting for it.
BUDGET_MS = "X-Raft3D-Budget-Ms"
# Set on the 503 of a node that received a forwarded write while not being the leader: the write
# was not proposed there, so the forwarding node may safely look for the leader again.
NOT_LEADER = "X-Raft3D-Not-Leader"
# Who the forwarding node authenticated the client as, when it signed the claim and the
# signature (see raft3d.security.forwarding_mac); honoured only when the signature verifies.
CALLER = "X-Raft3D-Caller"
CALLER_ROLE = "X-Raft3D-Caller-Role"
FORWARD_TIME = "X-Raft3D-Forward-Time"
FORWARD_MAC = "X-Raft3D-Forward-Mac"
FORWARDING = (FORWARDED_BY, BUDGET_MS, CALLER, CALLER_ROLE, FORWARD_TIME, FORWARD_MAC)
RAFT3D_PREFIX = "x-raft3d-"
IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"
RETRY_AFTER = "Retry-After"
