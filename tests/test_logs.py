"""Structured logs: key=value lines on the console, JSON lines in a file, a level per sink."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from raft3d.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_console_and_file_sinks_have_their_own_levels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    log_file = tmp_path / "logs" / "node.jsonl"
    configure_logging(console_level="WARNING", log_file=log_file, file_level="DEBUG")
    log = logging.getLogger("raft3d.node")
    log.debug("role changed node=%s term=%d from=%s to=%s", "n1", 3, "follower", "leader")
    log.warning("peer disconnected node=%s peer=%s term=%d index=%d", "n1", "n2", 3, 17)
    for handler in logging.getLogger().handlers:
        handler.flush()

    console = capsys.readouterr().err.strip().splitlines()
    assert len(console) == 1  # the debug line stayed out of the console
    assert "level=warning logger=raft3d.node" in console[0]
    assert 'msg="peer disconnected node=n1 peer=n2 term=3 index=17"' in console[0]

    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["level"] for r in records] == ["debug", "warning"]
    assert records[0]["msg"] == "role changed node=n1 term=3 from=follower to=leader"
    assert (records[0]["node"], records[0]["term"], records[0]["to"]) == ("n1", 3, "leader")
    assert (records[1]["peer"], records[1]["index"]) == ("n2", 17)
