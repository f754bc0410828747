"""What a node's processes (``raft3d serve`` and each of its HTTP fronts) do first: read the
node file and build the TLS contexts it asks for. A file that is refused is said on stderr,
once, in the same words by every process that reads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from raft3d.config import ConfigError, Settings, load_settings
from raft3d.security.settings import SecurityConfigError

if TYPE_CHECKING:
    # Imported where TLS is configured: ``cryptography`` is 8 MB of a node's memory.
    from raft3d.security.tls import TlsContexts


def load_node(
    config: str | Path,
    *,
    data_dir: str | Path | None,
    log_level: str | None,
    workers: int | None = None,
) -> tuple[Settings, TlsContexts | None] | None:
    """The node's settings and TLS contexts (None without ``[tls]``); None, with the reason
    printed on stderr, if the file or its certificates are refused (exit status 2)."""
    try:
        settings = load_settings(config, data_dir=data_dir, log_level=log_level, workers=workers)
        tls = None
        if settings.tls:
            from raft3d.security.tls import TlsContexts

            tls = TlsContexts(settings.tls, settings.node_id, settings.public_http.host.lower())
    except (ConfigError, SecurityConfigError) as exc:
        print(f"raft3d: {exc}", file=sys.stderr)
        return None
    return settings, tls
