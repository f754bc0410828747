"""Getting a command committed from any node: the node proposes it (a follower's node
forwards it to the leader over the peer link); ``leader.on_leader`` runs the loop that falls
back to HTTP forwarding when the node could not."""

from __future__ import annotations

from aiohttp import web

from raft3d.api.errors import ServiceUnavailable
from raft3d.api.leader import Wording, on_leader, request_budget
from raft3d.api.rendering import render_result
from raft3d.api.typedefs import NODE_KEY
from raft3d.domain.commands import Command, encode_command

_UNKEYED = Wording("write", "send an Idempotency-Key to retry safely")
_KEYED = Wording("write", "retry with the same Idempotency-Key to find out", resend_safe=True)


async def submit(
    request: web.Request, command: Command, *, success_status: int
) -> web.StreamResponse:
    """Commit ``command`` (on this node or through the leader) and render its result."""
    node = request.app[NODE_KEY]
    payload = encode_command(command)

    async def attempt(remaining: float) -> web.StreamResponse:
        try:
            result = await node.propose(payload, remaining)
        except TimeoutError:
            budget = request_budget(request)
            raise ServiceUnavailable(
                "timeout",
                f"the write was not seen to commit within {budget:g} s; it may still be "
                "applied later (retry with the same Idempotency-Key to find out)",
                {"timeout_s": budget},
            ) from None
        return render_result(result, success_status=success_status)

    wording = _UNKEYED if command.idempotency is None else _KEYED
    return await on_leader(request, attempt, wording)
