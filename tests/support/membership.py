"""Helpers for membership tests and benchmarks on real processes (SPEC §6).

``Writer`` is a client that writes printers continuously, one at a time, each with its own
``Idempotency-Key``; a failed attempt (refused connection, timeout, 503/504, forwarding
failure) is retried with the same key through the next live node until it is acknowledged
or its deadline passes. It counts the writes that needed a retry.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until

API = "/api/v1"
RETRYABLE = {502, 503, 504}


def members(node: NodeProcess, timeout: float = 2.0) -> dict[str, Any]:
    code, body, _ = http_json("GET", f"{node.url}/cluster/members", timeout=timeout)
    if code != 200 or not isinstance(body, dict):
        raise ValueError(f"/cluster/members on {node.node_id}: {code} {body!r}")
    return body


def suffrages(node: NodeProcess) -> dict[str, str]:
    """``{node_id: "voter" | "learner"}`` as ``node`` sees the configuration."""
    return {m["node_id"]: m["suffrage"] for m in members(node)["members"]}


def wait_for_voters(nodes: Sequence[NodeProcess], voters: set[str], timeout: float = 30.0) -> None:
    """Every node in ``nodes`` reports exactly ``voters`` as the voters and no learner."""

    def sees_them(node: NodeProcess) -> bool:
        if not node.alive:  # e.g. a joiner that gave up: say so now, with its log
            raise AssertionError(f"{node.node_id} exited:\n{node.log_tail()}")
        return suffrages(node) == dict.fromkeys(voters, "voter")

    for node in nodes:
        wait_until(
            lambda n=node: sees_them(n),  # type: ignore[misc]
            timeout,
            f"{node.node_id} to see voters {sorted(voters)}",
        )


def leader_of(cluster: ProcessCluster, timeout: float = 15.0) -> NodeProcess:
    return cluster.wait_for_leader(timeout=timeout)


def transfer_leadership(via: NodeProcess, target: str | None = None) -> tuple[int, Any]:
    body = {} if target is None else {"node_id": target}
    code, reply, _ = http_json("POST", f"{via.url}/cluster/leader", body, timeout=10.0)
    return code, reply


def remove_member(via: NodeProcess, node_id: str, force: bool = False) -> tuple[int, Any]:
    query = "?force=true" if force else ""
    code, reply, _ = http_json(
        "DELETE", f"{via.url}/cluster/members/{node_id}{query}", timeout=10.0
    )
    return code, reply


def printer_ids(node: NodeProcess) -> set[str]:
    code, body, _ = http_json("GET", f"{node.url}{API}/printers?consistency=local", timeout=10.0)
    assert code == 200, (code, body)
    return {p["id"] for p in body}


def caught_up(nodes: Sequence[NodeProcess], timeout: float = 30.0) -> None:
    """Every node has applied at least the commit index one of them reported at the call."""
    target = max(n.status()["commit_index"] for n in nodes)
    for node in nodes:
        wait_until(
            lambda n=node: n.status()["applied_index"] >= target,  # type: ignore[misc]
            timeout,
            f"{node.node_id} to apply index {target}",
        )


@dataclass
class WriterStats:
    acked: list[str] = field(default_factory=list)  # printer ids, in acknowledgement order
    attempts: int = 0
    failed_attempts: int = 0
    retried_writes: int = 0  # writes acknowledged only after at least one failed attempt
    lost: list[str] = field(default_factory=list)  # writes never acknowledged by their deadline
    replayed: int = 0  # acknowledged as a replay of an earlier attempt (Idempotent-Replayed)
    refused: list[str] = field(default_factory=list)  # a 4xx: a bug, never expected here

    def summary(self) -> str:
        return (
            f"{len(self.acked)} writes acknowledged in {self.attempts} attempts; "
            f"{self.failed_attempts} failed attempts "
            f"({100.0 * self.failed_attempts / max(self.attempts, 1):.2f} %), "
            f"{self.retried_writes} writes needed a retry (same Idempotency-Key), "
            f"{self.replayed} answered as replays; {len(self.lost)} never acknowledged, "
            f"{len(self.refused)} refused"
        )


class Writer:
    """Writes printers through ``targets()`` (the URLs of nodes to use) until stopped."""

    def __init__(
        self,
        targets: Callable[[], Sequence[str]],
        prefix: str = "w",
        write_deadline: float = 30.0,
        attempt_timeout: float = 3.0,
        pace: float = 0.0,
    ) -> None:
        self.targets = targets
        self.prefix = prefix
        self.write_deadline = write_deadline
        self.attempt_timeout = attempt_timeout
        self.pace = pace  # seconds between writes (0: as fast as acknowledgements come)
        self.stats = WriterStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{prefix}", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> WriterStats:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.write_deadline + 10.0)
        return self.stats

    def acked_count(self) -> int:
        with self._lock:
            return len(self.stats.acked)

    def wait_for_more(self, count: int, timeout: float = 30.0) -> None:
        """At least ``count`` more writes acknowledged than now."""
        goal = self.acked_count() + count

        def reached() -> bool:
            if not self._thread.is_alive():
                raise AssertionError(f"the writer stopped: {self.stats.refused[-1:]}")
            return self.acked_count() >= goal

        wait_until(reached, timeout, f"{goal} acknowledged writes")

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                self._write_one(f"{self.prefix}{i}")
            except Exception as exc:  # a bug in the test's client: fail the test, visibly
                with self._lock:
                    self.stats.refused.append(f"{self.prefix}{i}: client error {exc!r}")
                return
            if self.pace:
                self._stop.wait(self.pace)  # the load's rate, not synchronisation

    def _write_one(self, pid: str) -> None:
        body = {"id": pid, "company": "Creality", "model": "Ender 3"}
        headers = {"Idempotency-Key": f"key-{pid}"}
        deadline = time.monotonic() + self.write_deadline
        turn = hash(pid)
        failures = 0
        while time.monotonic() < deadline:
            urls = list(self.targets())
            if not urls:
                time.sleep(0.05)  # polling interval: no node up right now
                continue
            url = urls[turn % len(urls)]
            turn += 1
            with self._lock:
                self.stats.attempts += 1
            try:
                code, reply, got = http_json(
                    "POST",
                    f"{url}{API}/printers",
                    body,
                    timeout=self.attempt_timeout,
                    headers=headers,
                )
            except (OSError, ValueError, http.client.HTTPException):
                code, reply, got = 0, None, {}
            if code == 201:
                with self._lock:
                    self.stats.acked.append(pid)
                    self.stats.retried_writes += failures > 0
                    self.stats.replayed += got.get("Idempotent-Replayed") == "true"
                return
            if code not in RETRYABLE and code != 0:
                with self._lock:
                    self.stats.refused.append(f"{pid}: {code} {reply!r}")
                return
            failures += 1
            with self._lock:
                self.stats.failed_attempts += 1
            time.sleep(min(0.05 * failures, 0.5))  # capped backoff between retries
        with self._lock:
            self.stats.lost.append(pid)
