"""OTLP/gRPC: opentelemetry.proto.collector.logs.v1.LogsService/Export on the gRPC port."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from gateway.api.grpc.auth import principal as authenticated
from gateway.api.grpc.status import grpc_status
from gateway.api.otlp.export import SERVICE, OtlpExport, retry_info, status_of
from gateway.core.errors import GatewayError

# The retry delay travels twice: in the status details, where the OTLP spec and the
# Collector's exporters look, and alone under the key the OpenTelemetry Python and Java
# exporters read.
DETAILS_KEY = "grpc-status-details-bin"
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"


class OtlpLogsServicer:
    """Credentials as OTel exporters send them (`authorization: Bearer` in the exporter's
    `headers`), checked once by the server's Authenticator, as for LogIngest.Publish."""

    def __init__(self, export: OtlpExport) -> None:
        self._export = export

    async def Export(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, ExportLogsServiceResponse]
    ) -> ExportLogsServiceResponse:
        principal = authenticated()
        try:
            return await self._export(principal, request)
        except GatewayError as e:
            await abort(context, e)

    def add_to_server(self, server: grpc.aio.Server) -> None:
        """Serve LogsService/Export with each request as its bytes: the export decodes them
        within otlp.limits, where gRPC would parse the whole request first, on the loop."""
        export = grpc.unary_unary_rpc_method_handler(
            self.Export, response_serializer=ExportLogsServiceResponse.SerializeToString
        )
        handler = grpc.method_handlers_generic_handler(SERVICE, {"Export": export})
        server.add_generic_rpc_handlers((handler,))


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: GatewayError) -> NoReturn:
    trailing: list[tuple[str, bytes]] = []
    info = retry_info(error)
    if info is not None:
        trailing += [
            (DETAILS_KEY, status_of(error).SerializeToString()),
            (RETRY_INFO_KEY, info.SerializeToString()),
        ]
    await context.abort(grpc_status(error), error.message, tuple(trailing))
    raise AssertionError("unreachable: abort raises")
