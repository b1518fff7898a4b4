"""POST /api/logs/publish: the gRPC publish path over HTTP/JSON."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.api.convert import entry_from_json
from gateway.api.http_auth import authenticate
from gateway.core.cursor import encode_cursor
from gateway.core.errors import Code, GatewayError, invalid
from gateway.core.ingest import Ingest
from gateway.core.tokens import Verifier


class PublishHandler:
    def __init__(self, verifier: Verifier, ingest: Ingest, max_body: int) -> None:
        self._verifier = verifier
        self._ingest = ingest
        self._max_body = max_body

    async def handle(self, request: web.Request) -> web.Response:
        principal = authenticate(request, self._verifier, allow_cookie=False)
        doc = await self._read_json(request)
        raw = doc["entries"] if isinstance(doc, dict) and "entries" in doc else [doc]
        if not isinstance(raw, list) or not raw:
            raise invalid("'entries' must be a non-empty list")
        batch = await self._ingest.publish(principal, [entry_from_json(e) for e in raw])
        results: list[dict[str, Any]] = []
        for o in batch.outcomes:
            if isinstance(o, GatewayError):
                results.append({"error": {"code": o.code.slug, "message": o.message}})
            else:
                results.append({"offset": o.offset, "cursor": encode_cursor(batch.epoch, o.seq)})
        errors = [o for o in batch.outcomes if isinstance(o, GatewayError)]
        # A single entry answers with its own status; a batch answers 200 with per-entry results.
        if len(raw) == 1 and errors:
            raise errors[0]
        return web.json_response({"results": results}, dumps=lambda o: orjson.dumps(o).decode())

    async def _read_json(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > self._max_body:
            raise GatewayError(Code.TOO_LARGE, f"body larger than {self._max_body} bytes")
        if request.content_type != "application/json":
            raise invalid("Content-Type must be application/json")
        body = await self._read_body(request)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise invalid(f"body is not valid JSON: {e}") from None

    async def _read_body(self, request: web.Request) -> bytes:
        """The whole body, at most max_body bytes (one read() returns only what has arrived)."""
        body = bytearray()
        while chunk := await request.content.read(self._max_body + 1 - len(body)):
            body += chunk
            if len(body) > self._max_body:
                raise GatewayError(Code.TOO_LARGE, f"body larger than {self._max_body} bytes")
        return bytes(body)
