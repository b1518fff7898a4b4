"""Dev-mode sign-in: `GET /dev/login?user=NAME&workspace=ID` sets the browser's user cookie.

So the demo works in a browser without an external identity provider. The route is only
added in dev mode (elsewhere it is a 404), and the token it mints grants exactly the chosen
workspace's channels, so signing in as one workspace shows nothing of another.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlencode

from aiohttp import web

from gateway.api.http.auth import COOKIE
from gateway.api.http.proxy import query_segment
from gateway.core.errors import invalid
from gateway.core.tokens import Signer

log = logging.getLogger("logs_gateway.http")

PATH = "/dev/login"
DEV_TOKEN_TTL = 8 * 3600.0
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def workspace_patterns(workspace: str) -> tuple[str, str]:
    """Every channel of one workspace: `logs:{service}:{workspace}` and everything below."""
    return (f"logs:*:{workspace}", f"logs:*:{workspace}:>")


class DevLogin:
    def __init__(self, signer: Signer, ttl: float = DEV_TOKEN_TTL) -> None:
        self._signer = signer
        self._ttl = ttl

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        if not _USER.fullmatch(user):
            raise invalid("query parameter 'user' must be 1-64 characters of A-Z a-z 0-9 _ . @ -")
        workspace = query_segment(request.query, "workspace")
        token = self._signer.mint(user, subscribe=workspace_patterns(workspace), ttl=self._ttl)
        log.info("dev sign-in", extra={"user": user, "workspace": workspace})
        # The page reads the workspace from its query to know which channels to follow.
        response = web.Response(
            status=303, headers={"Location": "/?" + urlencode({"workspace": workspace})}
        )
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self._ttl),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )
        return response
