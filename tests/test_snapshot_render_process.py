"""The snapshot download's worker process never outlives its node, however the node ends."""

from __future__ import annotations

from pathlib import Path

from tests.support.procs import ProcessCluster, http_json, wait_until


def children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_node_leaves_no_snapshot_worker_behind(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, 1) as cluster:
        cluster.start()
        node = cluster.wait_for_leader(timeout=30)
        code, _, _ = http_json(
            "POST", f"{node.url}/api/v1/printers", {"id": "p1", "company": "C", "model": "M"}
        )
        assert code == 201
        code, _, _ = http_json("POST", f"{node.url}/cluster/snapshots", {})
        assert code in (200, 201)
        code, body, _ = http_json("GET", f"{node.url}/cluster/snapshots/latest", timeout=30)
        assert code == 200 and body["state"]["printers"][0]["id"] == "p1"
        assert node.proc is not None
        pid = node.proc.pid
        workers = wait_until(lambda: children(pid), 10, "the snapshot worker to be running")
        node.kill()
        wait_until(
            lambda: not any(alive(pid) for pid in workers),
            10,
            f"the node's worker processes {sorted(workers)} to end with it",
        )
