"""``raft3d serve --join`` as a process: a node that cannot join says why in one line and
exits 2; one whose data dir already belongs to a cluster ignores ``--join``. (Joining a live
cluster is exercised by the multi-process membership tests.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from raft3d.storage.identity import load_or_create_identity
from tests.support.procs import free_ports

SECRET = "serve-join-test-secret-0123456789"


def joiner_config(tmp_path: Path) -> Path:
    http, raft = free_ports(2)
    conf = tmp_path / "n4.toml"
    conf.write_text(
        f'[node]\nid = "n4"\nhttp = "127.0.0.1:{http}"\nraft = "127.0.0.1:{raft}"\n'
        f'data_dir = "{tmp_path / "data"}"\n[cluster]\nsecret = "{SECRET}"\n'
        f'[[cluster.members]]\nid = "n4"\nhttp = "127.0.0.1:{http}"\nraft = "127.0.0.1:{raft}"\n'
    )
    return conf


def serve(conf: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "raft3d", "serve", "--config", str(conf), *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_a_node_nobody_adds_gives_up_with_one_line_and_exit_2(tmp_path: Path) -> None:
    (closed,) = free_ports(1)
    url = f"http://127.0.0.1:{closed}"
    done = serve(joiner_config(tmp_path), "--join", url, "--join-timeout", "1")
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"raft3d: not added to the cluster within 1 s: {url}: ")
    assert "joining the cluster through" in done.stderr  # it served first, then asked


def test_join_is_ignored_for_a_data_dir_of_a_cluster(tmp_path: Path) -> None:
    conf = joiner_config(tmp_path)
    load_or_create_identity(tmp_path / "data", "n4", "c0ffee")
    (closed,) = free_ports(1)
    command = [sys.executable, "-m", "raft3d", "serve", "--config", str(conf)]
    command += ["--join", f"http://127.0.0.1:{closed}", "--join-timeout", "1"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        seen = []
        try:
            for line in process.stderr:
                seen.append(line)
                if "http listening" in line:
                    break
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert any("--join ignored" in line for line in seen), seen
