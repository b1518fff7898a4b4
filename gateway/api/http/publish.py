"""POST /api/logs/publish: the gRPC publish path over HTTP/JSON."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.api.convert import entry_from_json
from gateway.api.http.answer import OkAnswer
from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.api.http.bodies import BodyReader
from gateway.api.http.facts import RequestFacts
from gateway.core.cursor import encode_cursor
from gateway.core.errors import GatewayError, invalid
from gateway.core.idempotency import HEADER, request_key
from gateway.core.ingest import BatchOutcome, Ingest

JSON = "application/json"
JSON_UTF8 = "application/json; charset=utf-8"
REPLAYED = "Idempotent-Replayed"


class PublishHandler:
    def __init__(self, ingest: Ingest, bodies: BodyReader) -> None:
        self._ingest = ingest
        self._bodies = bodies

    @requires_token(TokenPolicy())  # the header only: a cookie never publishes (no CSRF)
    async def handle(self, request: RequestFacts) -> OkAnswer:
        principal = principal_of(request)
        _require_json(request)
        body = await self._bodies.read(request)
        raw = _entries(body)
        header = request.headers.get(HEADER)
        key = None if header is None else request_key(principal.subject, header, body)
        batch = await self._ingest.publish(principal, [entry_from_json(e) for e in raw], key)
        return _answer(batch, lone=len(raw) == 1)


def _require_json(request: RequestFacts) -> None:
    # The header as publishers send it, else parsed (parameters, case): most send it so.
    if request.headers.get("Content-Type") != JSON and request.content_type != JSON:
        raise invalid("Content-Type must be application/json")


def _entries(body: bytes) -> list[Any]:
    """The body's entries: one entry, or `{"entries": [...]}`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise invalid(f"body is not valid JSON: {e}") from None
    raw = doc["entries"] if isinstance(doc, dict) and "entries" in doc else [doc]
    if not isinstance(raw, list) or not raw:
        raise invalid("'entries' must be a non-empty list")
    return raw


def _answer(batch: BatchOutcome, lone: bool) -> OkAnswer:
    """200 with a result per entry; a lone entry refused answers with its own status."""
    results: list[dict[str, Any]] = []
    for o in batch.outcomes:
        if isinstance(o, GatewayError):
            if lone:
                raise o
            results.append({"error": {"code": o.code.slug, "message": o.message}})
        else:
            results.append({"offset": o.offset, "cursor": encode_cursor(batch.epoch, o.seq)})
    # The first answer again, for a resend under the same key, says so.
    replayed = ((REPLAYED, "true"),) if batch.duplicate else ()
    return OkAnswer(orjson.dumps({"results": results}), JSON_UTF8, replayed)
