"""What a chaos run records: operations as clients saw them, faults, event logs, final states.

Stored compactly: a read keeps the applied index the node reported and a digest of the list
it returned (never the list itself); the checker replays the event log and compares digests.
Times are ``time.monotonic()`` seconds of the harness process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK = "ok"  # 2xx: acknowledged
REFUSED = "refused"  # a definitive 4xx refusal from the state machine
UNKNOWN = "unknown"  # every attempt timed out, failed to connect or got a 503

# What a read asks for: name -> (path, query) of the list endpoint.
READ_TARGETS: dict[str, tuple[str, str]] = {
    "printers": ("/api/v1/printers", ""),
    "filaments": ("/api/v1/filaments", ""),
    "jobs_queued": ("/api/v1/print_jobs", "status=Queued"),
    "jobs_running": ("/api/v1/print_jobs", "status=Running"),
}


def list_digest(items: list[dict[str, Any]]) -> str:
    """The digest of a list body; the replay computes the same from its own objects."""
    canonical = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def json_digest(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass
class Attempt:
    """One HTTP request of a logical operation."""

    node: str
    start: float
    end: float
    status: int | None  # None: no HTTP answer (timeout, connection error)
    code: str = ""  # the error code of a JSON error body, or "timeout"/"connection"
    replayed: bool = False  # Idempotent-Replayed: true


@dataclass
class WriteOp:
    """A logical write: one idempotency key, retried through other nodes until definitive."""

    op_id: int
    client: int
    kind: str  # create_printer | create_filament | create_job | update_status
    args: dict[str, Any]
    key: str
    invoke: float
    complete: float  # of the definitive answer; for UNKNOWN, of the last attempt
    outcome: str = UNKNOWN
    code: str = ""  # the rejection code of a REFUSED op
    body_digest: str = ""  # of an acknowledged op's response body
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def partition(self) -> str:
        if self.kind == "create_printer":
            return f"printer:{self.args['id']}"
        return f"filament:{self.args['filament_id']}"


@dataclass
class ReadOp:
    op_id: int
    client: int
    node: str
    target: str  # a key of READ_TARGETS
    consistency: str  # linearizable | local
    invoke: float
    complete: float
    status: int | None
    index: int | None = None  # X-Raft3D-Applied-Index
    digest: str = ""
    count: int = 0


@dataclass
class Fault:
    kind: str
    start: float
    end: float
    detail: str = ""


@dataclass
class NodeEvent:
    """One event as one node reported it: digests, so nodes can be compared cheaply."""

    core: str  # digest of (term, type, payload)
    outcome: str | None  # digest of the outcome; None when the node reported null


@dataclass
class History:
    seed: int = 0
    started: float = 0.0
    ended: float = 0.0
    writes: list[WriteOp] = field(default_factory=list)
    reads: list[ReadOp] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # The merged event log: index -> event JSON (with a known outcome when any node had one).
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    node_events: dict[str, dict[int, NodeEvent]] = field(default_factory=dict)
    # Each node's final state, read after the cluster converged: applied index and lists.
    final_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        data = asdict(self)
        data["events"] = {str(k): v for k, v in self.events.items()}
        data["node_events"] = {
            node: {str(k): asdict(v) for k, v in evs.items()}
            for node, evs in self.node_events.items()
        }
        path.write_text(json.dumps(data, separators=(",", ":")))

    @classmethod
    def load(cls, path: Path) -> History:
        data = json.loads(path.read_text())
        history = cls(
            seed=data["seed"],
            started=data["started"],
            ended=data["ended"],
            final_states=data["final_states"],
            notes=data["notes"],
        )
        history.writes = [
            WriteOp(**{**w, "attempts": [Attempt(**a) for a in w["attempts"]]})
            for w in data["writes"]
        ]
        history.reads = [ReadOp(**r) for r in data["reads"]]
        history.faults = [Fault(**f) for f in data["faults"]]
        history.events = {int(k): v for k, v in data["events"].items()}
        history.node_events = {
            node: {int(k): NodeEvent(**v) for k, v in evs.items()}
            for node, evs in data["node_events"].items()
        }
        return history
