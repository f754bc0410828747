"""The CPU a forwarded proposal and its answer cost the peer transport, over loopback.

Two transports in one process, as a follower ("f") and its leader ("l"): "f" forwards
``--burst`` proposals of 128 bytes per turn of the loop (what a busy follower's HTTP handlers
do), "l" answers each one as it arrives, as the leader does, and the next burst goes once
every answer is back. Prints the process CPU time per proposal (both ends: encode, MAC,
write, read, verify, decode, deliver, answer), the frames written per proposal and the rate.

    .venv/bin/python -m benchmarks.forwarding_bench [--proposals N] [--burst 32]

Run it with ``PYTHONPATH=<other checkout>/src`` to measure another version beside this one.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from raft3d.transport import Transport
from raft3d.transport.proposals import ForwardedProposal, Forwarding, ProposalAnswer

SECRET = b"benchmark-cluster-secret"
LOCAL = "127.0.0.1"
COMMAND = b"c" * 128


async def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.001)


async def run(proposals: int, burst: int) -> tuple[float, float, float]:
    """CPU microseconds per proposal, frames written per proposal, proposals per second."""
    answered = 0
    done = asyncio.Event()
    leader: Transport | None = None

    def at_leader(msg: Forwarding) -> None:
        assert leader is not None and type(msg) is ForwardedProposal
        leader.send(ProposalAnswer(msg.frm, "l", msg.proposal_id, msg.proposal_id, 1))

    def at_follower(msg: Forwarding) -> None:
        nonlocal answered
        assert type(msg) is ProposalAnswer
        answered += 1
        if answered % burst == 0 or answered == proposals:
            done.set()

    follower = Transport("f", (LOCAL, 0), {"l": (LOCAL, 1)}, SECRET, lambda m: None,
                         on_forward=at_follower, send_queue_limit=4 * burst)  # fmt: skip
    leader = Transport("l", (LOCAL, 0), {"f": (LOCAL, 1)}, SECRET, lambda m: None,
                       on_forward=at_leader, send_queue_limit=4 * burst)  # fmt: skip
    await follower.start()
    await leader.start()
    try:
        follower.set_peer_address("l", (LOCAL, leader.port))
        leader.set_peer_address("f", (LOCAL, follower.port))
        await wait_for(lambda: follower.reachable("l") and leader.reachable("f"), 10)
        writes = follower.stats.writes + leader.stats.writes
        cpu, wall = time.process_time(), time.perf_counter()
        sent = 0
        while sent < proposals:
            done.clear()
            deadline = time.monotonic() + 10
            for _ in range(min(burst, proposals - sent)):
                sent += 1
                follower.send(ForwardedProposal("l", "f", sent, COMMAND, deadline))
            await asyncio.wait_for(done.wait(), 10)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        writes = follower.stats.writes + leader.stats.writes - writes
    finally:
        await follower.stop()
        await leader.stop()
    return cpu / proposals * 1e6, writes / proposals, proposals / wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proposals", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=32, help="proposals sent per turn")
    args = parser.parse_args()
    cpu, writes, rate = uvloop.run(run(args.proposals, args.burst))
    print(
        f"{args.proposals} proposals in bursts of {args.burst}: {cpu:.1f} us CPU each "
        f"(both ends), {writes:.3f} writes each, {rate:,.0f}/s"
    )


if __name__ == "__main__":
    main()
