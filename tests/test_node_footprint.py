"""What a node without TLS does not load: ``cryptography`` (8 MB of its memory)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import raft3d.api.app, raft3d.cli, raft3d.node.wiring
from raft3d.cli import main
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "cryptography")
print(",".join(loaded) or "none")
"""


def test_the_node_command_loads_no_cryptography_without_tls() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"
