"""OTLP/HTTP: POST /v1/logs, as application/x-protobuf or application/json.

Answers in the request's own encoding, as the OTLP spec asks: the response message on
success, a google.rpc.Status on failure, with `Retry-After` when the client should resend
later (429 over the publish rate, 503 while draining). An `Idempotency-Key` makes a resend
store nothing twice (gateway/core/idempotency.py). A gzip (or deflate) body is inflated as
it is read, within the limits of http.bodies.
"""

from __future__ import annotations

import math

from aiohttp import web

from gateway.api.http.answer import OkAnswer
from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.api.http.bodies import BodyReader
from gateway.api.http.facts import Reply, RequestFacts
from gateway.api.otlp.export import OtlpExport, status_of
from gateway.api.otlp.json_mapping import to_json
from gateway.core.errors import GatewayError, invalid
from gateway.core.idempotency import HEADER, request_key

PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class OtlpHttpHandler:
    def __init__(self, export: OtlpExport, bodies: BodyReader) -> None:
        self._export = export
        self._bodies = bodies

    @requires_token(TokenPolicy(refusal=lambda request, e: _refused(request, e)))
    async def handle(self, request: RequestFacts) -> Reply:
        as_json = request.content_type == JSON
        try:
            if not as_json and request.content_type != PROTOBUF:
                raise invalid(f"Content-Type must be {PROTOBUF} or {JSON}")
            body = await self._bodies.read(request)
            principal = principal_of(request)
            header = request.headers.get(HEADER)
            # The body as inflated: a resend is the same bytes (the records are not parsed
            # whole to key them; otlp.limits reads them a part at a time).
            key = None if header is None else request_key(principal.subject, header, body)
            response = await self._export(principal, body, as_json, key)
        except GatewayError as e:
            return _refused(request, e)
        body = to_json(response) if as_json else response.SerializeToString()
        return OkAnswer(body, JSON if as_json else PROTOBUF)


def _refused(request: RequestFacts, error: GatewayError) -> web.Response:
    """A refusal as OTLP clients read it: a google.rpc.Status in the request's encoding."""
    as_json = request.content_type == JSON
    status = status_of(error)
    response = web.Response(
        body=to_json(status) if as_json else status.SerializeToString(),
        status=error.code.http_status,
        content_type=JSON if as_json else PROTOBUF,
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response
