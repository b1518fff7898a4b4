"""POST /api/logs/publish: the gRPC publish path over HTTP/JSON."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.api.convert import entry_from_json
from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.api.http.bodies import BodyReader
from gateway.core.cursor import encode_cursor
from gateway.core.errors import GatewayError, invalid
from gateway.core.idempotency import HEADER, request_key
from gateway.core.ingest import Ingest

JSON = "application/json"
REPLAYED = "Idempotent-Replayed"


class PublishHandler:
    def __init__(self, ingest: Ingest, bodies: BodyReader) -> None:
        self._ingest = ingest
        self._bodies = bodies

    @requires_token(TokenPolicy())  # the header only: a cookie never publishes (no CSRF)
    async def handle(self, request: web.Request) -> web.Response:
        principal = principal_of(request)
        # The header as publishers send it, else parsed (parameters, case): most send it so.
        if request.headers.get("Content-Type") != JSON and request.content_type != JSON:
            raise invalid("Content-Type must be application/json")
        body = await self._bodies.read(request)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise invalid(f"body is not valid JSON: {e}") from None
        raw = doc["entries"] if isinstance(doc, dict) and "entries" in doc else [doc]
        if not isinstance(raw, list) or not raw:
            raise invalid("'entries' must be a non-empty list")
        header = request.headers.get(HEADER)
        key = None if header is None else request_key(principal.subject, header, body)
        # map, not a comprehension: no frame of its own (Python 3.11), paid on every POST.
        batch = await self._ingest.publish(principal, list(map(entry_from_json, raw)), key)
        epoch = batch.epoch
        results: list[dict[str, Any]] = []
        for o in batch.outcomes:
            if isinstance(o, GatewayError):
                if len(raw) == 1:  # a lone entry answers with its own status
                    raise o
                results.append({"error": {"code": o.code.slug, "message": o.message}})
            else:
                results.append({"offset": o.offset, "cursor": encode_cursor(epoch, o.seq)})
        # A batch answers 200 with per-entry results, orjson's bytes as they are (json_response
        # would encode a str made from them again).
        body = orjson.dumps({"results": results})
        answer = web.Response(body=body, content_type=JSON, charset="utf-8")
        if batch.duplicate:  # the first answer again: a resend under the same key
            answer.headers[REPLAYED] = "true"
        return answer
