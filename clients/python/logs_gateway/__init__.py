"""Python client of logs-gateway: publish log entries over gRPC from services and scripts.

    from logs_gateway import SyncPublisher
    with SyncPublisher(token) as logs:
        logs.publish("logs:etl:workspace123:workflow456", "extract done", attributes={"rows": 120})

`Publisher` is the asyncio twin, `LogsHandler` a standard logging.Handler on top. A token
is a string, a callable returning one, or `token_file(path)` (a Kubernetes projected
service-account token, read again as it rotates).
"""

from logs_gateway.entries import make_entry, severity
from logs_gateway.errors import (
    BatchTooLarge,
    EntryTooLarge,
    InvalidArgument,
    LogsGatewayError,
    PermissionDenied,
    ProtocolError,
    PublisherClosed,
    PublisherFailed,
    PublishTimeout,
    Unauthenticated,
    Unavailable,
)
from logs_gateway.handler import LogsHandler
from logs_gateway.options import DEFAULT_TARGET, Options, Stats
from logs_gateway.publisher import Publisher, State
from logs_gateway.sync import SyncPublisher
from logs_gateway.tokens import token_file

__all__ = [
    "DEFAULT_TARGET",
    "BatchTooLarge",
    "EntryTooLarge",
    "InvalidArgument",
    "LogsGatewayError",
    "LogsHandler",
    "Options",
    "PermissionDenied",
    "ProtocolError",
    "PublishTimeout",
    "Publisher",
    "PublisherClosed",
    "PublisherFailed",
    "State",
    "Stats",
    "SyncPublisher",
    "Unauthenticated",
    "Unavailable",
    "make_entry",
    "severity",
    "token_file",
]
