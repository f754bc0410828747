"""The pages a browser asks for: the dashboard (``/``), the API reference (``/docs``), assets.

Everything is shipped inside the package (``raft3d/api/static``) and read with
``importlib.resources``, so an installed node serves it with no network and no build step.
Only the files named in ``ASSETS`` are served: a request can never name a path of its choosing.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from raft3d.api.errors import NotFound

_STATIC = resources.files("raft3d.api") / "static"
ASSETS: dict[str, str] = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "client.js": "text/javascript",
    "docs.js": "text/javascript",
}
# Pages and scripts come only from this node: no inline script, nothing from elsewhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src *; frame-ancestors 'none'"
)


PUBLIC_PAGES = frozenset({"/", "/docs", "/openapi.json"})
_ASSET_PREFIX = "/static/"


def is_public_page(method: str, path: str) -> bool:
    """A page, asset or the API document: no farm data, so served even when tokens are on.

    The dashboard's data comes from the API with the user's token; a browser cannot send one
    to load the page itself.
    """
    return method in ("GET", "HEAD") and (path in PUBLIC_PAGES or path.startswith(_ASSET_PREFIX))


def _read(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


def _page(name: str) -> web.Response:
    return web.Response(
        body=_read(name),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


async def dashboard(request: web.Request) -> web.Response:
    return _page("index.html")


async def api_docs(request: web.Request) -> web.Response:
    return _page("docs.html")


async def static_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise NotFound("not_found", f"no file named {name[:128]!r}", {"name": name[:128]})
    return web.Response(
        body=_read(name),
        content_type=content_type,
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )
