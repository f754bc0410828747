"""One chaos run: start a cluster behind the link proxy, run clients and the nemesis for a
while, heal, let the cluster converge, collect, check, and summarise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from raft3d.config import RaftSettings

from . import membership_faults  # noqa: F401 - registers the membership faults
from .archive import SnapshotArchiver
from .checker import Checker
from .clients import Clients
from .cluster import ChaosCluster
from .collector import EventCollector, final_state
from .history import OK, REFUSED, UNKNOWN, History
from .nemesis import Nemesis
from .verdicts import CheckResult

CONVERGE_TIMEOUT_S = 90.0
NEVER_SNAPSHOT = 1_000_000_000
# Settings newer nodes have (SPEC §7); set where supported, so that snapshots keep coming
# often and laggards still need InstallSnapshot rather than the entries a node keeps.
SNAPSHOT_TRAILING_ENTRIES = 20
SNAPSHOT_EXTRAS: dict[str, object] = {
    "snapshot_trailing_entries": SNAPSHOT_TRAILING_ENTRIES,
    "snapshot_log_ratio": 0.0,
}
_RAFT_SETTINGS = {f.name for f in dataclasses.fields(RaftSettings)}
MAX_OPS_PER_CLIENT = 1_000_000


@dataclass
class RunConfig:
    seed: int
    duration: float
    nodes: int = 3
    clients: int = 6
    snapshot_threshold: int = 150
    snapshot_chunk_bytes: int = 2048
    request_timeout_s: float = 2.0
    membership: bool = False  # membership faults (``membership_faults``) join the draw
    workdir: Path | None = None  # kept; by default a temp dir, removed when the run passes

    def replay_command(self) -> str:
        return (
            f"python -m tests.chaos --seed {self.seed} --duration {self.duration:g} "
            f"--nodes {self.nodes} --clients {self.clients} "
            f"--snapshot-threshold {self.snapshot_threshold}"
            + (" --membership" if self.membership else "")
        )


@dataclass
class RunReport:
    config: RunConfig
    history: History
    checks: list[CheckResult] = field(default_factory=list)
    workdir: Path | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.checks) and all(c.ok for c in self.checks)

    def summary(self) -> str:
        h = self.history
        outcomes = Counter(op.outcome for op in h.writes)
        reads = Counter("ok" if r.status == 200 else "failed" for r in h.reads)
        faults = Counter(f.kind for f in h.faults)
        mid = sum("mid-transfer" in f.detail for f in h.faults)
        lines = [
            f"chaos run: seed {self.config.seed}, {self.config.duration:g} s, "
            f"{self.config.nodes} nodes, {self.config.clients} clients "
            f"(faults and clients ran {h.ended - h.started:.0f} s)",
            f"operations: {len(h.writes) + len(h.reads)} ({len(h.writes)} writes, "
            f"{len(h.reads)} reads)",
            f"writes: {outcomes[OK]} acknowledged, {outcomes[REFUSED]} refused, "
            f"{outcomes[UNKNOWN]} indeterminate",
            f"reads: {reads['ok']} answered, {reads['failed']} failed or timed out",
            f"events collected: {len(h.events)}",
            "faults: "
            + (", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "none")
            + (f" (snapshot kills mid-transfer: {mid})" if faults["snapshot_kill"] else ""),
            f"longest unavailability (no write acknowledged): {longest_gap(h):.1f} s",
        ]
        lines += [f"  {c.line()}" for c in self.checks]
        lines += [f"  note: {n}" for n in h.notes]
        if self.error:
            lines.append(f"ERROR: {self.error}")
        lines.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        if not self.ok:
            lines.append(f"replay: {self.config.replay_command()}")
            if self.workdir is not None:
                lines.append(f"history and node logs kept in {self.workdir}")
        return "\n".join(lines)


def longest_gap(history: History) -> float:
    acks = sorted(op.complete for op in history.writes if op.outcome == OK)
    points = [history.started, *[t for t in acks if t >= history.started], history.ended]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


async def _wait_converged(cluster: ChaosCluster, nemesis: Nemesis) -> dict[str, int] | None:
    """Every node up and applied to the same commit index, twice in a row (bounded)."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    previous = None
    while time.monotonic() < deadline:
        statuses = [await nemesis.status(n) for n in cluster.ids]
        if all(s is not None for s in statuses):
            applied = {s["node_id"]: s["applied_index"] for s in statuses if s}
            commits = {s["commit_index"] for s in statuses if s}
            leaders = {s["leader_id"] for s in statuses if s}
            if (
                len(set(applied.values())) == 1
                and commits == set(applied.values())
                and (len(leaders) == 1 and None not in leaders)
            ):
                if applied == previous:
                    return applied
                previous = applied
        await asyncio.sleep(0.2)  # polling interval
    return None


async def _run(
    config: RunConfig, root: Path, history: History, snapshots: dict[int, bytes]
) -> None:
    raft: dict[str, object] = {
        # "0: no snapshots" is a run option; a node takes a threshold it never reaches.
        "snapshot_threshold": config.snapshot_threshold or NEVER_SNAPSHOT,
        "snapshot_chunk_bytes": config.snapshot_chunk_bytes,
    }
    if config.snapshot_threshold > 0:
        raft.update({k: v for k, v in SNAPSHOT_EXTRAS.items() if k in _RAFT_SETTINGS})
    cluster = ChaosCluster(
        root,
        config.nodes,
        raft=raft,
        http={"request_timeout_s": config.request_timeout_s},
        snapshot_stagger=config.snapshot_threshold // 5,
    )
    try:
        await cluster.start()
        urls = {nid: node.url for nid, node in cluster.nodes.items()}
        nemesis = Nemesis(
            cluster,
            history,
            config.seed,
            config.snapshot_chunk_bytes,
            snapshots=config.snapshot_threshold > 0,
            trailing=SNAPSHOT_TRAILING_ENTRIES if "snapshot_trailing_entries" in raft else 0,
            membership=config.membership,
        )
        collector = EventCollector(urls, history)
        archiver = SnapshotArchiver(
            {nid: node.data_dir for nid, node in cluster.nodes.items()}, root / "archive", history
        )
        async with Clients(urls, history, config.seed) as clients, aiohttp.ClientSession() as s:
            nemesis.session = s
            assert clients.session is not None
            if await _wait_converged(cluster, nemesis) is None:
                raise RuntimeError("the cluster did not elect a leader at start")
            await clients.setup(random.Random(config.seed))
            stop, collecting = asyncio.Event(), asyncio.Event()
            followers = [
                asyncio.create_task(collector.follow(clients.session, n, collecting)) for n in urls
            ]
            followers.append(asyncio.create_task(archiver.follow(collecting)))
            history.started = time.monotonic()
            workers = [
                asyncio.create_task(clients.run_client(i + 1, stop, MAX_OPS_PER_CLIENT))
                for i in range(config.clients)
            ]
            chaos = asyncio.create_task(nemesis.run(stop))
            try:
                await asyncio.sleep(config.duration)  # the length of the run
            finally:
                stop.set()
                history.ended = time.monotonic()  # the end of the faults and new operations
                await asyncio.gather(chaos, *workers, return_exceptions=True)
                await nemesis.heal_all()
            converged = await _wait_converged(cluster, nemesis)
            if converged is None:
                history.notes.append(f"cluster did not converge within {CONVERGE_TIMEOUT_S} s")
                statuses = {n: await nemesis.status(n) for n in cluster.ids}
                converged = {n: s["applied_index"] for n, s in statuses.items() if s}
            collecting.set()
            await asyncio.gather(*followers)
            await collector.drain(clients.session, converged)
            archiver.scan()
            snapshots.update(archiver.snapshots())
            for node, spans in collector.skipped.items():
                if spans:
                    history.notes.append(
                        f"{node} compacted {len(spans)} spans before they were read"
                    )
            for node, url in urls.items():
                for _ in range(20):
                    state = await final_state(clients.session, url)
                    if state is not None:
                        history.final_states[node] = state
                        break
    finally:
        cluster.stop()
        await cluster.proxy.wait()


def run(config: RunConfig) -> RunReport:
    keep = config.workdir is not None
    root = config.workdir or Path(tempfile.mkdtemp(prefix=f"raft3d-chaos-{config.seed}-"))
    root.mkdir(parents=True, exist_ok=True)
    history = History(seed=config.seed)
    report = RunReport(config, history, workdir=root)
    snapshots: dict[int, bytes] = {}
    try:
        asyncio.run(_run(config, root, history, snapshots))
    except Exception as exc:  # reported with the replay command, never swallowed silently
        report.error = f"{type(exc).__name__}: {exc}"
    if not report.error:
        report.checks = Checker(history, snapshots).run()
    history.save(root / "history.json")
    if report.ok and not keep:
        shutil.rmtree(root, ignore_errors=True)
        report.workdir = None
    return report


def recheck(workdir: Path) -> list[CheckResult]:
    """Run the checker again on the history (and archived snapshots) a run kept."""
    history = History.load(workdir / "history.json")
    archive = SnapshotArchiver({}, workdir / "archive", history)
    for path in sorted((workdir / "archive").glob("*.snap")):
        archive.archived[int(path.name.split("-")[2])] = path
    return Checker(history, archive.snapshots()).run()
