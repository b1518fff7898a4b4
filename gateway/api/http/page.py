"""The Logs page at `/` and its static files.

The files live in `gateway/web/`; `gateway/web/lib` links to `clients/web/`, so the page
loads the very JS client that ships to other apps, in a checkout, an editable install, a
container that copies the repository, or a wheel (which stores the linked files). Only the
files found at start are served, by name, so no request path reaches the file system.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web

from gateway.core.errors import Code, GatewayError

log = logging.getLogger("logs_gateway.http")
WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
CLIENT = "lib/logs-client.js"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page talks only to its own origin and loads nothing from elsewhere.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def static_files(root: Path) -> dict[str, Path]:
    """URL name (relative to `root`) -> file, for every file of a servable type."""
    files: dict[str, Path] = {}
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = Path(folder, name)
            if path.suffix in CONTENT_TYPES:
                files[path.relative_to(root).as_posix()] = path
    return files


class Page:
    def __init__(self, root: Path = WEB_ROOT) -> None:
        self._files = static_files(root)
        if CLIENT not in self._files:
            # e.g. an image built without clients/web: the page would load but never connect.
            log.warning("the Logs page cannot load its JS client", extra={"missing": CLIENT})

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.index), web.get("/static/{name:.+}", self.static)]

    async def index(self, request: web.Request) -> web.FileResponse:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.FileResponse:
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.FileResponse:
        path = self._files.get(name)
        if path is None:
            raise GatewayError(Code.NOT_FOUND, f"no such file {name[:200]!r}")
        headers = {
            "Content-Type": CONTENT_TYPES[path.suffix],
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": PAGE_POLICY,
        }
        return web.FileResponse(path, headers=headers)
