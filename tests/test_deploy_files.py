"""The container image and compose file agree with the node configs they run.

There is no Docker daemon on the machines that run these tests, so this checks structure:
what each service runs, with which config, on which volume, at which advertised address.
"""

from __future__ import annotations

import http.server
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from raft3d.config import Settings, load_settings
from tests.support.procs import REPO

DEFAULT_SECRET = "raft3d-compose-demo-secret-change-me"


def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def config_path(service: dict[str, Any]) -> Path:
    """The config file a service's command names, found through the service's bind mount."""
    command = service["command"]
    config = Path(command[command.index("--config") + 1])
    for volume in service["volumes"]:
        source, target, *_ = str(volume).split(":")
        if config.is_relative_to(target):
            return REPO / source / config.relative_to(target)
    raise AssertionError(f"{config} is not mounted into the service")


def service_settings(service: dict[str, Any]) -> Settings:
    return load_settings(config_path(service), env={})


def test_three_services_advertise_their_own_service_names() -> None:
    services = compose()["services"]
    assert sorted(services) == ["node1", "node2", "node3"]
    for name, service in services.items():
        settings = service_settings(service)
        assert settings.node_id == name
        assert settings.http.host == "0.0.0.0"  # bind everything in the container...
        assert settings.public_http.host == name  # ...advertise the service name
        assert settings.public_raft.host == name
        assert {m.node_id: m.http.host for m in settings.members} == {s: s for s in services}
        assert {m.raft.host for m in settings.members} == set(services)
        published = [p.split(":") for p in service["ports"]]
        assert [int(inside) for _, inside in published] == [settings.http.port]


def test_each_service_keeps_its_data_on_its_own_named_volume() -> None:
    data = compose()
    declared = set(data["volumes"])
    used = []
    for service in data["services"].values():
        settings = service_settings(service)
        mounts = dict(v.split(":")[:2][::-1] for v in service["volumes"])
        volume = mounts[str(settings.data_dir)]
        assert volume in declared
        used.append(volume)
    assert len(set(used)) == 3


def test_the_demo_secret_is_overridable_from_the_environment() -> None:
    for service in compose()["services"].values():
        value = service["environment"]["RAFT3D_CLUSTER_SECRET"]
        assert value == f"${{RAFT3D_CLUSTER_SECRET:-{DEFAULT_SECRET}}}"
        settings = service_settings(service)
        assert settings.cluster_secret == DEFAULT_SECRET.encode()
        overridden = load_settings(config_path(service), env={"RAFT3D_CLUSTER_SECRET": "x" * 20})
        assert overridden.cluster_secret == b"x" * 20


def test_the_image_is_slim_runs_unprivileged_and_checks_readiness() -> None:
    text = (REPO / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if re.match(r"[A-Z]", line)]
    first = dict((k, v) for k, v in instructions)
    assert re.fullmatch(r"python:3\.11-slim", first["FROM"])
    assert first["USER"] not in ("root", "0")
    assert first["VOLUME"] == "/data"
    healthcheck = text[text.index("HEALTHCHECK") :]
    assert "raft3d.healthcheck" in healthcheck
    from raft3d import healthcheck as probe

    assert probe.DEFAULT_URL.endswith("/readyz")
    # Every service's node listens where the probe looks.
    for service in compose()["services"].values():
        assert service_settings(service).http.port == urllib.parse.urlsplit(probe.DEFAULT_URL).port


def test_the_health_probe_passes_only_on_200(monkeypatch: pytest.MonkeyPatch) -> None:
    from raft3d import healthcheck

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("RAFT3D_HEALTH_URL", f"{base}/readyz")
        assert healthcheck.main() == 0
        monkeypatch.setenv("RAFT3D_HEALTH_URL", f"{base}/not-ready")
        assert healthcheck.main() == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
