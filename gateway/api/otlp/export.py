"""One OTLP logs export, the same over gRPC and HTTP: records to the publish path, its
answer back as OTLP says (a response, or a google.rpc.Status with the retry delay)."""

from __future__ import annotations

import math
from collections.abc import Callable

from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from gateway.api.otlp.convert import entries_from, export_response
from gateway.api.otlp.decode import decode_protobuf
from gateway.api.otlp.json_mapping import decode_json
from gateway.api.otlp.limits import OtlpLimits
from gateway.core.broker import DedupKey
from gateway.core.channel_template import ChannelTemplate
from gateway.core.errors import Code, GatewayError
from gateway.core.ingest import Ingest
from gateway.core.tokens import Principal

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def draining() -> GatewayError:
    """A draining gateway asks exporters to come back after the time a load balancer needs
    to send them to another instance (the SSE stream's `shutdown` says the same). A new
    error each time: one raised keeps its traceback, whose frames hold the request (a
    module-level one kept the last refused request alive)."""
    return GatewayError(
        Code.UNAVAILABLE, "gateway is draining; retry", reason="draining", retry_after=1.0
    )


class OtlpExport:
    def __init__(
        self,
        ingest: Ingest,
        template: ChannelTemplate | None,
        draining: Callable[[], bool],
        limits: OtlpLimits,
    ) -> None:
        self._ingest = ingest
        self._template = template
        self._draining = draining
        self.limits = limits

    async def __call__(
        self,
        principal: Principal,
        body: bytes,
        as_json: bool = False,
        key: DedupKey | None = None,
    ) -> ExportLogsServiceResponse:
        """Answers once every accepted record is in history; raises GatewayError when the
        whole request is refused (draining, a limit of otlp.limits, over the token's
        publish rate)."""
        if self._draining():
            raise draining()
        if as_json:
            decoded = await decode_json(body, self.limits)
        else:
            decoded = decode_protobuf(body, self.limits)
        items = await entries_from(decoded, self._template)
        if not items:
            return ExportLogsServiceResponse()
        batch = await self._ingest.publish(principal, items, key)
        return export_response(batch.outcomes)


def retry_info(error: GatewayError) -> RetryInfo | None:
    """The delay OTLP clients wait before resending, when the refusal has one."""
    if error.retry_after is None:
        return None
    millis = max(1, math.ceil(error.retry_after * 1000))
    return RetryInfo(retry_delay=Duration(seconds=millis // 1000, nanos=millis % 1000 * 10**6))


def status_of(error: GatewayError) -> Status:
    """The error as google.rpc.Status: the gRPC status details and the OTLP/HTTP body."""
    status = Status(code=error.code.grpc_code, message=error.message)
    info = retry_info(error)
    if info is not None:
        status.details.add().Pack(info)
    return status
