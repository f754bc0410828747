"""``python -m raft3d.healthcheck``: exit 0 when this node's ``/readyz`` answers 200.

For container health checks. ``RAFT3D_HEALTH_URL`` says where (default
``http://127.0.0.1:8080/readyz``). The probe stays on the container's own loopback, so an
HTTPS certificate is not verified (it names the node's advertised host, not 127.0.0.1).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/readyz"


def main() -> int:
    url = os.environ.get("RAFT3D_HEALTH_URL", DEFAULT_URL)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError) as exc:
        print(f"raft3d healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
